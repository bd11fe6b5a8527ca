/**
 * The configuration reference (docs/configuration.md) rendered from the zod env shapes the
 * services load: each variable's default, what it accepts and its `.describe()` text, so the page
 * cannot say anything the schemas do not. Shared groups (commonEnv, awsEnv, ...) are recognised
 * by identity: a shape that spreads a group holds the very same schema objects.
 */
import { z } from 'zod';

type Shape = Readonly<Record<string, z.ZodType>>;

/** A set of variables several shapes spread, documented once. */
export interface EnvGroup {
  title: string;
  /** Where it is defined, e.g. `packages/kit/src/config.ts` (`commonEnv`). */
  source: string;
  shape: Shape;
}

/** A process and the complete shape it loads. */
export interface EnvWorkload {
  title: string;
  /** Markdown: where the shape is defined and who loads it. */
  note: string;
  shape: Shape;
}

export interface ConfigReference {
  /** Markdown before the workloads. */
  intro: string;
  sections: { title: string; workloads: EnvWorkload[] }[];
  groups: EnvGroup[];
}

/** GitHub's heading anchor: lower case, punctuation dropped, spaces to hyphens. */
export const headingAnchor = (heading: string) =>
  heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-');

/** A table cell: no line breaks, and `|` escaped (also inside code spans, as GitHub requires). */
const cell = (text: string) => text.replace(/\s*\n\s*/g, ' ').replace(/\|/g, '\\|');
const code = (text: string) => `\`${text}\``;

/** The default as it would be written in the environment; undefined when the variable has none. */
function inputDefault(schema: z.ZodType): unknown {
  const def = schema.def as { type: string; defaultValue?: unknown; in?: z.ZodType; innerType?: z.ZodType };
  if (def.type === 'default') return def.defaultValue;
  if (def.type === 'pipe' && def.in) return inputDefault(def.in);
  if (def.type === 'optional' && def.innerType) return inputDefault(def.innerType);
  return undefined;
}

const written = (value: unknown) => (Array.isArray(value) ? value.join(',') : String(value));

function defaultCell(schema: z.ZodType): string {
  if (!schema.safeParse(undefined).success) return '**required**';
  const value = inputDefault(schema);
  if (value === undefined) return 'unset';
  if (Array.isArray(value) && value.length === 0) return 'none';
  return code(written(value));
}

const booleanWords = ['0', '1', 'false', 'no', 'true', 'yes'];

/** What the variable accepts, from its input JSON Schema (and a list when it parses to an array). */
function acceptsCell(schema: z.ZodType): string {
  const json = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as {
    type?: string;
    enum?: unknown[];
    format?: string;
    minimum?: number;
    exclusiveMinimum?: number;
    maximum?: number;
  };
  const parsed = schema.safeParse(undefined);
  if (parsed.success && Array.isArray(parsed.data)) return 'comma-separated list';
  if (json.enum) {
    const values = json.enum.map(String);
    if ([...values].sort().join() === booleanWords.join()) return '`true`/`false` (or `1`/`0`, `yes`/`no`)';
    return values.map(code).join(', ');
  }
  if (json.type === 'integer' || json.type === 'number') {
    const max = json.maximum !== undefined && json.maximum < Number.MAX_SAFE_INTEGER ? json.maximum : undefined;
    if (json.exclusiveMinimum !== undefined) return `${json.type} > ${json.exclusiveMinimum}${max === undefined ? '' : `, ≤ ${max}`}`;
    if (json.minimum === undefined) return max === undefined ? json.type : `${json.type} ≤ ${max}`;
    return max === undefined ? `${json.type} ≥ ${json.minimum}` : `${json.type} ${json.minimum}–${max}`;
  }
  if (json.format === 'uri') return 'URL';
  return 'string';
}

function variableRows(shape: Shape, names: readonly string[]): string[] {
  return names.map((name) => {
    const schema = shape[name]!;
    const description = schema.description;
    if (!description) throw new Error(`${name} has no description: add .describe('...') to its schema`);
    return `| ${code(name)} | ${cell(defaultCell(schema))} | ${cell(acceptsCell(schema))} | ${cell(description)} |`;
  });
}

const contains = (outer: Shape, inner: Shape) => Object.entries(inner).every(([name, schema]) => outer[name] === schema);

/** The groups a shape spreads whole, leaving out those inside a larger one it also spreads. */
function groupsIn(shape: Shape, groups: readonly EnvGroup[], self?: EnvGroup): EnvGroup[] {
  const whole = groups.filter((g) => g !== self && contains(shape, g.shape));
  return whole.filter((g) => !whole.some((other) => other !== g && contains(other.shape, g.shape)));
}

function table(shape: Shape, groups: readonly EnvGroup[], self?: EnvGroup): string[] {
  const spread = groupsIn(shape, groups, self);
  const own = Object.keys(shape).filter((name) => !spread.some((g) => name in g.shape));
  const lines: string[] = [];
  if (spread.length > 0) lines.push(`Shared: ${spread.map((g) => `[${g.title}](#${headingAnchor(g.title)})`).join(', ')}.`, '');
  if (own.length > 0) lines.push('| Variable | Default | Accepts | Description |', '| --- | --- | --- | --- |', ...variableRows(shape, own), '');
  return lines;
}

export function renderConfigReference(reference: ConfigReference): string {
  const lines = [reference.intro.trim(), ''];
  for (const section of reference.sections) {
    lines.push(`## ${section.title}`, '');
    for (const workload of section.workloads) {
      lines.push(`### ${workload.title}`, '', workload.note.trim(), '', ...table(workload.shape, reference.groups));
    }
  }
  lines.push('## Shared groups', '');
  for (const group of reference.groups) {
    lines.push(`### ${group.title}`, '', `${group.source}.`, '', ...table(group.shape, reference.groups, group));
  }
  return `${lines.join('\n').trimEnd()}\n`;
}
