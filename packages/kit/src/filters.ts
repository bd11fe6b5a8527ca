/**
 * Knative's own trigger filter model (eventing.knative.dev/v1 `spec.filters`, the subscriptions API
 * dialects), its matching semantics and its refusals, so the local broker routes exactly as the
 * cluster does and no trigger the cluster would refuse or ignore gets past the topology.
 *
 * No `cesql` dialect: the local broker would need a CESQL engine to evaluate it as the cluster does.
 */

type AttributeMap = Readonly<Record<string, string>>;
type NonEmpty<T> = readonly [T, ...T[]];

interface Dialects {
  /** The attribute equals the value (case-sensitive). */
  exact: AttributeMap;
  prefix: AttributeMap;
  suffix: AttributeMap;
  /** Every nested filter matches. */
  all: NonEmpty<Filter>;
  /** At least one nested filter matches. */
  any: NonEmpty<Filter>;
  /** The nested filter does not match. */
  not: Filter;
}
type Dialect = keyof Dialects;

/** One entry of `spec.filters`: exactly one dialect. A trigger's entries are ANDed. */
export type Filter = {
  [D in Dialect]: { readonly [K in D]: Dialects[D] } & { readonly [K in Exclude<Dialect, D>]?: never };
}[Dialect];

const dialects: ReadonlySet<string> = new Set<Dialect>(['exact', 'prefix', 'suffix', 'all', 'any', 'not']);

/**
 * Does an event with these attributes pass every filter? Knative's semantics (eventfilter/
 * subscriptionsapi): a missing attribute fails exact, prefix and suffix (so `not` of it passes),
 * non-string values compare as strings, and no filters at all let everything through. Knative's
 * third outcome ("no filter") arises only from an empty list, which `filterProblems` refuses
 * everywhere but at the top.
 */
export function matchesFilters(filters: readonly Filter[], attributes: Readonly<Record<string, unknown>>): boolean {
  return filters.every((filter) => matches(filter, attributes));
}

function matches(filter: Filter, attributes: Readonly<Record<string, unknown>>): boolean {
  if (filter.exact) return compare(filter.exact, attributes, (value, expected) => value === expected);
  if (filter.prefix) return compare(filter.prefix, attributes, (value, prefix) => value.startsWith(prefix));
  if (filter.suffix) return compare(filter.suffix, attributes, (value, suffix) => value.endsWith(suffix));
  if (filter.all) return matchesFilters(filter.all, attributes);
  if (filter.any) return filter.any.some((nested) => matches(nested, attributes));
  return !matches(filter.not, attributes);
}

/** Every attribute of the map is present and passes `test`. */
function compare(map: AttributeMap, attributes: Readonly<Record<string, unknown>>, test: (value: string, operand: string) => boolean): boolean {
  return Object.entries(map).every(([name, operand]) => {
    const value = attributes[name];
    return value !== undefined && value !== null && test(String(value), operand);
  });
}

const ATTRIBUTE_NAME = /^[a-z][a-z0-9]*$/;

/**
 * What Knative would refuse or silently ignore in these filters, one message per problem in the
 * webhook's form (`<message>: <path>`, e.g. `spec.filters[0].exact[Type]`). The webhook
 * (pkg/apis/eventing/v1 trigger_validation.go) refuses an entry with more than one dialect and an
 * attribute name outside `^[a-z][a-z0-9]*$`. An empty attribute value, an empty map, an empty
 * `all`/`any` or an entry without a dialect it admits, but the broker then drops that entry
 * (subscriptionsapi create.go), widening the trigger: those are refused here too. One attribute
 * per map is the rule of Knative's earlier webhook (ValidateSingleAttributeMap); the current one
 * ANDs several, so one is valid on both.
 */
export function filterProblems(filters: readonly Filter[], path = 'spec.filters'): string[] {
  return filters.flatMap((filter, index) => entryProblems(filter, `${path}[${index}]`));
}

function entryProblems(filter: Filter, path: string): string[] {
  const keys = Object.keys(filter);
  const unknown = keys.filter((key) => !dialects.has(key));
  if (unknown.length > 0) return [`must not set the field(s): ${unknown.map((key) => `${path}.${key}`).join(', ')}`];
  if (keys.length === 0) return [`expected exactly one, got neither: ${path}`];
  if (keys.length > 1) return [`multiple dialects found, filters can have only one dialect set: ${path}`];
  const at = `${path}.${keys[0]}`;
  const map = filter.exact ?? filter.prefix ?? filter.suffix;
  if (map) return mapProblems(map, at);
  const list = filter.all ?? filter.any;
  if (list) return list.length === 0 ? [`missing field(s): ${at}`] : filterProblems(list, at);
  return filter.not ? entryProblems(filter.not, at) : [];
}

function mapProblems(map: AttributeMap, path: string): string[] {
  const entries = Object.entries(map);
  if (entries.length === 0) return [`missing field(s): ${path}`];
  return [
    ...(entries.length > 1 ? [`Multiple items found, can have only one key-value: ${path}`] : []),
    ...entries.flatMap(([name, value]) => [
      ...(ATTRIBUTE_NAME.test(name)
        ? []
        : [`invalid key name ${JSON.stringify(name)}: ${path}[${name}]\nAttribute name must start with a letter and can only contain lowercase alphanumeric`]),
      ...(value === '' ? [`invalid arguments, attribute and value can't be empty: ${path}[${name}]`] : []),
    ]),
  ];
}
