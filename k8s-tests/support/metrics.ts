/**
 * The metrics the services really export, read from their source: every prom-client metric
 * constructor (`new Counter|Gauge|Histogram|Summary({ name, labelNames })`) in services/*\/src, packages/*\/src
 * (and local/src, the local stack's own servers),
 * parsed with the TypeScript compiler. A name given by a constant is resolved within its file;
 * a name that cannot be resolved fails loudly, so no metric escapes the check. The default
 * process and Node.js metrics come from prom-client itself.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { collectDefaultMetrics, Registry } from 'prom-client';
import ts from 'typescript';

export interface ExportedMetric {
  name: string;
  type: 'counter' | 'gauge' | 'histogram' | 'summary';
  labels: readonly string[];
  /** Where it is declared (repository-relative), or `prom-client` for the defaults. */
  source: string;
}

const constructors: Readonly<Record<string, ExportedMetric['type']>> = { Counter: 'counter', Gauge: 'gauge', Histogram: 'histogram', Summary: 'summary' };

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((entry) => {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) return sourceFiles(path);
    return path.endsWith('.ts') && !path.endsWith('.d.ts') ? [path] : [];
  });
}

function stringValue(node: ts.Expression, constants: ReadonlyMap<string, string>): string | undefined {
  if (ts.isStringLiteralLike(node)) return node.text;
  if (ts.isIdentifier(node)) return constants.get(node.text);
  return undefined;
}

function metricsInFile(path: string, root: string): ExportedMetric[] {
  const file = ts.createSourceFile(path, readFileSync(path, 'utf8'), ts.ScriptTarget.Latest, true);
  const constants = new Map<string, string>();
  const found: ExportedMetric[] = [];
  const visit = (node: ts.Node): void => {
    if (ts.isVariableDeclaration(node) && ts.isIdentifier(node.name) && node.initializer && ts.isStringLiteralLike(node.initializer)) {
      constants.set(node.name.text, node.initializer.text);
    }
    ts.forEachChild(node, visit);
  };
  visit(file);
  const collect = (node: ts.Node): void => {
    if (ts.isNewExpression(node) && ts.isIdentifier(node.expression) && constructors[node.expression.text]) {
      const options = node.arguments?.[0];
      const where = `${relative(root, path)}:${file.getLineAndCharacterOfPosition(node.getStart()).line + 1}`;
      if (!options || !ts.isObjectLiteralExpression(options)) throw new Error(`${where}: metric options are not an object literal`);
      const property = (key: string) =>
        options.properties.find((p): p is ts.PropertyAssignment => ts.isPropertyAssignment(p) && ts.isIdentifier(p.name) && p.name.text === key)?.initializer;
      const nameNode = property('name');
      const name = nameNode && stringValue(nameNode, constants);
      if (!name) throw new Error(`${where}: cannot resolve the metric name`);
      const labelsNode = property('labelNames');
      const list = labelsNode && ts.isAsExpression(labelsNode) ? labelsNode.expression : labelsNode;
      const labels = list && ts.isArrayLiteralExpression(list) ? list.elements.map((e) => stringValue(e, constants) ?? '?') : [];
      found.push({ name, type: constructors[node.expression.text] as ExportedMetric['type'], labels, source: where });
    }
    ts.forEachChild(node, collect);
  };
  collect(file);
  return found;
}

/** The metrics of services/*\/src and the libraries they run (packages/*\/src): what the cluster scrapes. */
export function declaredMetrics(root: string): ExportedMetric[] {
  return ['services', 'packages']
    .flatMap((top) => readdirSync(join(root, top)).map((name) => join(root, top, name, 'src')))
    .filter((dir) => statSync(dir, { throwIfNoEntry: false })?.isDirectory())
    .flatMap((dir) => sourceFiles(dir).flatMap((file) => metricsInFile(file, root)));
}

/** The metrics of the local stack's own servers (local/src: the broker), which only it runs. */
export const localMetrics = (root: string): ExportedMetric[] => sourceFiles(join(root, 'local', 'src')).flatMap((file) => metricsInFile(file, root));

export function defaultMetrics(): ExportedMetric[] {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  return registry.getMetricsAsArray().map((m) => {
    const { name, type } = m as unknown as { name: string; type: string };
    return { name, type: type as ExportedMetric['type'], labels: [], source: 'prom-client' };
  });
}

/** Series names as Prometheus stores them: histograms and summaries add suffixed series. */
export function seriesNames(metric: ExportedMetric): string[] {
  switch (metric.type) {
    case 'histogram':
      return [`${metric.name}_bucket`, `${metric.name}_sum`, `${metric.name}_count`];
    case 'summary':
      return [metric.name, `${metric.name}_sum`, `${metric.name}_count`];
    default:
      return [metric.name];
  }
}
