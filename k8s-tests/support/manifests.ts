/** The synthesized objects of every environment, in memory, parsed back from the chart's YAML. */
import { parseAllDocuments } from 'yaml';
import { buildApp, environmentNames, environments, type EnvironmentConfig, type EnvironmentName } from '@avatar-pipeline/cdk8s';

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [field: string]: unknown;
}

export interface Synthesized {
  name: EnvironmentName;
  config: EnvironmentConfig;
  yaml: string;
  objects: K8sObject[];
}

/** Parses multi-document YAML, failing on any syntax error or warning. */
export function parseObjects(yaml: string): K8sObject[] {
  return parseAllDocuments(yaml).map((doc, i) => {
    if (doc.errors.length > 0 || doc.warnings.length > 0) throw new Error(`document ${i}: ${[...doc.errors, ...doc.warnings].map((e) => e.message).join('; ')}`);
    return doc.toJS() as K8sObject;
  });
}

const cache = new Map<EnvironmentName, Synthesized>();

export function synthesize(name: EnvironmentName): Synthesized {
  let result = cache.get(name);
  if (!result) {
    const yaml = buildApp(name).app.synthYaml();
    result = { name, config: environments[name], yaml, objects: parseObjects(yaml) };
    cache.set(name, result);
  }
  return result;
}

export const allEnvironments = (): Synthesized[] => environmentNames.map(synthesize);

export const ofKind = (objects: readonly K8sObject[], apiVersion: string, kind: string) =>
  objects.filter((o) => o.apiVersion === apiVersion && o.kind === kind);

/** A deep copy to break in tests. */
export const clone = <T>(value: T): T => structuredClone(value);
