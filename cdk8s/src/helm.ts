/**
 * cdk8s writes Helm templates: the chart code builds its objects from placeholders that stand for
 * Helm expressions (`.Values...`, `.Release.Namespace`), and `renderTemplate` turns the
 * synthesized objects into a template in which every value that holds a placeholder is rendered
 * by Helm as JSON (valid YAML for any type, quoting included), so operator input can never break
 * the YAML or inject fields.
 *
 * - `value(path)` / `text(path)` / `num(path)`: a values entry, placed where TypeScript expects
 *   that type. Placeholders may be embedded in longer strings (URLs, nginx config): the string
 *   becomes a Helm `print` of its literal parts and the values.
 * - `Conditional`: a construct scope whose objects exist only when a values condition holds (the
 *   chart's optional parts extend it, taking the condition as `ConditionalProps.when`).
 * - `nameFromSpec`: a name that changes whenever the object's spec does (Jobs, whose pod template
 *   is immutable), evaluated by Helm over the rendered values.
 * The chart code must only place placeholders, never inspect them: they are opaque strings.
 */
import { createHash } from 'node:crypto';
import { ApiObject, Chart, JsonPatch } from 'cdk8s';
import { Construct } from 'constructs';
// YAML 1.1, as Helm and Kubernetes read it: `on` and `yes` are booleans there, so they get quoted.
import { stringify } from 'yaml';

const OPEN = '\uE000';
const CLOSE = '\uE001';
const MARKER = new RegExp(`${OPEN}(\\d+)${CLOSE}`, 'g');

/** Go template expressions (operands), by placeholder number. Shared by every chart of the process. */
const expressions: string[] = [];

/** A placeholder for a Go template operand, typed as what it renders to. */
export function helmExpr<T = string>(expression: string): T {
  const id = expressions.push(`(${expression})`) - 1;
  return `${OPEN}${id}${CLOSE}` as T;
}

const goString = (literal: string) => JSON.stringify(literal);

/** `index .Values "a" "b"`: safe for keys Go templates cannot dot into (`s3-source`). */
export const valuesRef = (path: readonly string[]) => `index .Values ${path.map(goString).join(' ')}`;

/** A values entry, as the type it holds (a map, a list, a bool): rendered as JSON where it stands alone. */
export const value = <T>(...path: string[]): T => helmExpr<T>(valuesRef(path));
/** A string values entry. */
export const text = (...path: string[]): string => value<string>(...path);
/** A number values entry, as an integer (Helm reads YAML numbers as floats, which print as 5.24288e+06). */
export const num = (...path: string[]): number => helmExpr<number>(`int64 (${valuesRef(path)})`);

/** A number placeholder as a string (annotations and variables are strings; alone, a number renders as one). */
export const asText = (n: number): string => helmExpr(`toString ${operand(n)}`);

/** The namespace the release is installed in. */
export const releaseNamespace = (): string => helmExpr('.Release.Namespace');

/** Helm's standard labels: renderTemplate puts them on every object. */
const standardLabels = (): Record<string, string> => ({
  'helm.sh/chart': helmExpr('replace "+" "_" (print .Chart.Name "-" .Chart.Version)'),
  'app.kubernetes.io/managed-by': helmExpr('.Release.Service'),
  'app.kubernetes.io/instance': helmExpr('.Release.Name'),
  'app.kubernetes.io/version': helmExpr('.Chart.AppVersion'),
});

/** True when the string holds a placeholder. */
export const hasPlaceholder = (s: string) => s.includes(OPEN);

/** The Go template operand that renders `s` (literal parts and placeholders) as one string. */
export function stringExpression(s: string): string {
  const parts: string[] = [];
  let last = 0;
  for (const match of s.matchAll(MARKER)) {
    if (match.index > last) parts.push(goString(s.slice(last, match.index)));
    // toString: `print` puts a space between two operands that are not strings.
    parts.push(`(toString ${expressions[Number(match[1])]!})`);
    last = match.index + match[0].length;
  }
  if (last < s.length) parts.push(goString(s.slice(last)));
  if (parts.length === 1 && s.startsWith(OPEN) && s.endsWith(CLOSE)) return expressions[Number(/\d+/.exec(s)![0])]!;
  return `(print ${parts.join(' ')})`;
}

/** The operand of any value: placeholders as they are, strings through `stringExpression`, the rest as dicts and lists. */
export function operand(v: unknown): string {
  if (typeof v === 'string') return hasPlaceholder(v) ? stringExpression(v) : goString(v);
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (v === null || v === undefined) return 'nil';
  if (Array.isArray(v)) return `(list ${v.map(operand).join(' ')})`;
  return `(dict ${Object.entries(v as Record<string, unknown>).map(([k, x]) => `${goString(k)} ${operand(x)}`).join(' ')})`;
}

/** A string placeholder that is `yes` when `condition` holds, else `no`. */
export const choose = (condition: Condition, yes: string, no = ''): string => helmExpr(`ternary ${operand(yes)} ${operand(no)} ${condition.expression}`);

/** A values condition (a Go template pipeline evaluating to a bool). */
export class Condition {
  constructor(readonly expression: string) {}
  static isTrue(...path: string[]): Condition {
    return new Condition(`(${valuesRef(path)})`);
  }
  static equals(expected: string, ...path: string[]): Condition {
    return new Condition(`(eq (${valuesRef(path)}) ${goString(expected)})`);
  }
  and(other: Condition): Condition {
    return new Condition(`(and ${this.expression} ${other.expression})`);
  }
  not(): Condition {
    return new Condition(`(not ${this.expression})`);
  }
}

/** A scope whose objects are rendered only when `condition` holds. */
export class Conditional extends Construct {
  constructor(
    scope: Construct,
    id: string,
    readonly condition: Condition,
  ) {
    super(scope, id);
  }
}

/** Props of a part of the chart that is itself a Conditional (the stand-ins, the dev issuer, the reconciler...). */
export interface ConditionalProps {
  /** The values condition the part is rendered under (its `enabled` switch, or a mode). */
  readonly when: Condition;
}

const NAME_FROM_SPEC = 'helm.avatar-pipeline/name-from-spec';

/** Names `object` `<prefix>-<hash of its spec>`: a changed spec (a new image tag, a changed value) is a new object. */
export function nameFromSpec(object: ApiObject, prefix: string): void {
  object.metadata.addAnnotation(NAME_FROM_SPEC, prefix);
}

/** Fields present only under a condition, by number: `\uE002<n>\uE003` stands for one. */
const optionalFields: { condition: Condition; value: unknown }[] = [];
const OPTIONAL = /^\uE002(\d+)\uE003$/;

/** Sets a field of `object` only when `condition` holds; otherwise the key is left out altogether. */
export function optionalField(object: ApiObject, path: string, condition: Condition, value: unknown): void {
  const id = optionalFields.push({ condition, value }) - 1;
  setField(object, path, `\uE002${id}\uE003`);
}

/** Replaces a field of `object` with a placeholder of any type (the constructs' own types want concrete values). */
export function setField(object: ApiObject, path: string, placeholder: unknown): void {
  object.addJsonPatch(JsonPatch.add(path, placeholder));
}

/** Text that Helm renders to exactly `text` (literal `{{`/`}}` of Prometheus and Grafana templates). */
export function helmLiteral(text: string): string {
  return text.replace(/\{\{|\}\}/g, (delimiter) => `{{ "${delimiter}" }}`);
}

/** Every placeholder operand found in `v`, in order. */
function placeholdersIn(v: unknown, found: string[] = []): string[] {
  if (typeof v === 'string') for (const m of v.matchAll(MARKER)) found.push(expressions[Number(m[1])]!);
  else if (Array.isArray(v)) for (const x of v) placeholdersIn(x, found);
  else if (v && typeof v === 'object') for (const x of Object.values(v)) placeholdersIn(x, found);
  return found;
}

interface Manifest {
  metadata: { name: string; labels?: Record<string, string> | string; annotations?: Record<string, string> };
  [field: string]: unknown;
}

/** `{{ toJson ... }}` for each value holding a placeholder, through tokens YAML keeps plain. */
function substitute(v: unknown, actions: string[]): unknown {
  if (typeof v === 'string') {
    const optional = OPTIONAL.exec(v);
    if (optional) {
      const { value } = optionalFields[Number(optional[1])]!;
      actions.push(`{{ toJson ${operand(value)} }}`);
      return `HELMOPTIONAL${actions.length - 1}:${optional[1]}X`;
    }
    if (!hasPlaceholder(v)) return v;
    actions.push(`{{ toJson ${stringExpression(v)} }}`);
    return `HELMACTION${actions.length - 1}X`;
  }
  if (Array.isArray(v)) return v.map((x) => substitute(x, actions));
  if (v && typeof v === 'object') {
    return Object.fromEntries(
      Object.entries(v).map(([k, x]) => {
        if (hasPlaceholder(k)) throw new Error(`a placeholder in the key ${JSON.stringify(k)}`);
        return [k, substitute(x, actions)];
      }),
    );
  }
  return v;
}

function applyNameFromSpec(manifest: Manifest): Manifest {
  const prefix = manifest.metadata.annotations?.[NAME_FROM_SPEC];
  if (!prefix) return manifest;
  const { [NAME_FROM_SPEC]: _, ...annotations } = manifest.metadata.annotations ?? {};
  const { metadata, ...rest } = manifest;
  // The spec's literal shape is hashed here (placeholders as the expressions they stand for, so
  // the name does not depend on their numbering); the values it holds are hashed by Helm.
  const shape = JSON.stringify(rest, (_, v: unknown) => (typeof v === 'string' && hasPlaceholder(v) ? stringExpression(v) : v));
  const literal = createHash('sha256').update(shape).digest('hex').slice(0, 16);
  const hash = `trunc 10 (sha256sum (toJson (list ${goString(literal)} ${placeholdersIn(rest).join(' ')})))`;
  const name = helmExpr(`print ${goString(`${prefix}-`)} (${hash})`);
  return { ...rest, metadata: { ...metadata, name, ...(Object.keys(annotations).length > 0 ? { annotations } : { annotations: undefined }) } } as Manifest;
}

const dropUndefined = (v: unknown): unknown => JSON.parse(JSON.stringify(v)) as unknown;

/** Adds the standard labels (to a labels map; a placeholder map is merged with them by Helm). */
function withStandardLabels(manifest: Manifest): Manifest {
  const { labels } = manifest.metadata;
  const merged = typeof labels === 'string' ? helmExpr(`merge ${operand(standardLabels())} ${operand(labels)}`) : { ...standardLabels(), ...labels };
  return { ...manifest, metadata: { ...manifest.metadata, labels: merged } };
}

/** The conditions of the Conditional scopes an object is in, outermost first. */
const conditionsOf = (object: ApiObject) => object.node.scopes.filter((s): s is Conditional => s instanceof Conditional).map((s) => s.condition);

/** One Helm template holding every object of `chart`, each document guarded by its scopes' conditions. */
export function renderTemplate(chart: Chart): string {
  const objects = chart.node.findAll().filter((c): c is ApiObject => c instanceof ApiObject);
  return objects
    .map((object) => {
      const manifest = dropUndefined(withStandardLabels(applyNameFromSpec(object.toJson() as Manifest)));
      const actions: string[] = [];
      const yaml = helmLiteral(stringify(substitute(manifest, actions), { lineWidth: 0, version: '1.1' }))
        // An optional field is its own line: `{{-` and `{{- end` trim the newlines around it when absent.
        .replace(/^(.*)HELMOPTIONAL(\d+):(\d+)X$/gm, (_, line: string, i: string, id: string) => {
          const { condition } = optionalFields[Number(id)]!;
          return `{{- if ${condition.expression} }}\n${line}${actions[Number(i)]!}\n{{- end }}`;
        })
        .replace(/HELMACTION(\d+)X/g, (_, i: string) => actions[Number(i)]!);
      const conditions = conditionsOf(object);
      if (conditions.length === 0) return `---\n${yaml}`;
      const condition = conditions.reduce((a, b) => a.and(b));
      return `{{- if ${condition.expression} }}\n---\n${yaml}{{- end }}\n`;
    })
    .join('');
}
