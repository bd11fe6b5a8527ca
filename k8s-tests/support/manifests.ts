/** Parsing rendered objects, and the chart's values as Helm merges them. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse, parseAllDocuments } from 'yaml';
import { CHART_NAME, valuesFile, type EnvironmentName } from '@avatar-pipeline/cdk8s';

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [field: string]: unknown;
}

/** The chart, as committed. */
export const chartDir = fileURLToPath(new URL(`../../charts/${CHART_NAME}`, import.meta.url));

/** Parses multi-document YAML, failing on any syntax error or warning; empty documents are left out. */
export function parseObjects(yaml: string): K8sObject[] {
  return parseAllDocuments(yaml)
    .map((doc, i) => {
      if (doc.errors.length > 0 || doc.warnings.length > 0) throw new Error(`document ${i}: ${[...doc.errors, ...doc.warnings].map((e) => e.message).join('; ')}`);
      return doc.toJS() as K8sObject | null;
    })
    .filter((o): o is K8sObject => o !== null);
}

export type Values = Record<string, unknown>;

/** Helm's merge of values files: maps merge key by key, null deletes, anything else is replaced. */
export function mergeValues(base: Values, over: Values): Values {
  const out: Values = { ...base };
  for (const [k, v] of Object.entries(over)) {
    // null deletes a default.
    if (v === null) {
      delete out[k];
      continue;
    }
    const b = out[k];
    const isMap = (x: unknown): x is Values => typeof x === 'object' && x !== null && !Array.isArray(x);
    out[k] = isMap(b) && isMap(v) ? mergeValues(b, v) : v;
  }
  return out;
}

const readValues = (file: string) => parse(readFileSync(join(chartDir, file), 'utf8')) as Values;

/** values.yaml with values-<environment>.yaml over it. */
export const environmentValues = (environment: EnvironmentName): Values => mergeValues(readValues('values.yaml'), readValues(valuesFile(environment)));

/** A values entry by path. */
export function valueAt(values: Values, ...path: string[]): unknown {
  return path.reduce<unknown>((v, k) => (v as Values | undefined)?.[k], values);
}

export const ofKind = (objects: readonly K8sObject[], apiVersion: string, kind: string) =>
  objects.filter((o) => o.apiVersion === apiVersion && o.kind === kind);

/** A deep copy to break in tests. */
export const clone = <T>(value: T): T => structuredClone(value);
