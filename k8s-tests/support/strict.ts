/**
 * Strictness the kubernetes-models validators lack: unknown fields and bad enum values.
 *
 * Core objects are walked against @kubernetes/client-node's generated models (each class lists
 * its fields and their types in `attributeTypeMap`, from the Kubernetes OpenAPI spec), so any
 * field Kubernetes does not know is reported with its path. Enumerations the spec only documents
 * in prose are checked from the table below.
 */
import * as models from '@kubernetes/client-node';

interface Attribute {
  baseName: string;
  type: string;
}

type ModelClass = { getAttributeTypeMap(): Attribute[] };

const modelClasses = models as unknown as Record<string, ModelClass | undefined>;

function attributes(type: string): Attribute[] | undefined {
  const model = modelClasses[type];
  return typeof model?.getAttributeTypeMap === 'function' ? model.getAttributeTypeMap() : undefined;
}

/** Field name -> allowed values, wherever the field appears in a core object. */
export const enumFields: Readonly<Record<string, readonly string[]>> = {
  imagePullPolicy: ['Always', 'IfNotPresent', 'Never'],
  restartPolicy: ['Always', 'OnFailure', 'Never'],
  protocol: ['TCP', 'UDP', 'SCTP'],
  dnsPolicy: ['ClusterFirst', 'ClusterFirstWithHostNet', 'Default', 'None'],
  fsGroupChangePolicy: ['OnRootMismatch', 'Always'],
  pathType: ['Exact', 'Prefix', 'ImplementationSpecific'],
  volumeMode: ['Filesystem', 'Block'],
  scheme: ['HTTP', 'HTTPS'],
  medium: ['', 'Memory', 'HugePages'],
  concurrencyPolicy: ['Allow', 'Forbid', 'Replace'],
  terminationMessagePolicy: ['File', 'FallbackToLogsOnError'],
  operator: ['In', 'NotIn', 'Exists', 'DoesNotExist', 'Equal'],
};

/** Enumerations that depend on the object they are in: kind -> JSON path -> values. */
const pathEnums: Readonly<Record<string, Readonly<Record<string, readonly string[]>>>> = {
  Service: { '/spec/type': ['ClusterIP', 'NodePort', 'LoadBalancer', 'ExternalName'] },
  Deployment: { '/spec/strategy/type': ['RollingUpdate', 'Recreate'] },
  PersistentVolumeClaim: { '/spec/accessModes/*': ['ReadWriteOnce', 'ReadOnlyMany', 'ReadWriteMany', 'ReadWriteOncePod'] },
};

const seccompTypes = ['RuntimeDefault', 'Localhost', 'Unconfined'];

export interface StrictProblem {
  path: string;
  message: string;
}

function typeOf(value: unknown): string {
  return Array.isArray(value) ? 'array' : value === null ? 'null' : typeof value;
}

/** Walks `value` as the client-node model `type` (e.g. `V1Deployment`), collecting problems. */
export function checkAgainstModel(value: unknown, type: string, path = ''): StrictProblem[] {
  const problems: StrictProblem[] = [];
  const walk = (v: unknown, t: string, p: string): void => {
    if (v === undefined) return;
    const array = /^Array<(.+)>$/.exec(t);
    if (array?.[1]) {
      if (!Array.isArray(v)) return void problems.push({ path: p, message: `expected an array, got ${typeOf(v)}` });
      v.forEach((item, i) => walk(item, array[1] as string, `${p}/${i}`));
      return;
    }
    const map = /^\{ \[key: string\]: (.+); \}$/.exec(t);
    if (map?.[1]) {
      if (typeOf(v) !== 'object') return void problems.push({ path: p, message: `expected an object, got ${typeOf(v)}` });
      for (const [k, item] of Object.entries(v as object)) walk(item, map[1], `${p}/${k}`);
      return;
    }
    switch (t) {
      case 'string':
      case 'Date':
        if (typeof v !== 'string') problems.push({ path: p, message: `expected a string, got ${typeOf(v)}` });
        return;
      case 'number':
        if (typeof v !== 'number') problems.push({ path: p, message: `expected a number, got ${typeOf(v)}` });
        return;
      case 'boolean':
        if (typeof v !== 'boolean') problems.push({ path: p, message: `expected a boolean, got ${typeOf(v)}` });
        return;
      case 'IntOrString':
        if (typeof v !== 'string' && typeof v !== 'number') problems.push({ path: p, message: `expected an int or string, got ${typeOf(v)}` });
        return;
      case 'any':
      case 'object':
        return;
    }
    const fields = attributes(t);
    if (!fields) return void problems.push({ path: p, message: `no model for type ${t}` });
    if (typeOf(v) !== 'object') return void problems.push({ path: p, message: `expected an object (${t}), got ${typeOf(v)}` });
    const byName = new Map(fields.map((f) => [f.baseName, f]));
    for (const [key, item] of Object.entries(v as object)) {
      const field = byName.get(key);
      if (!field) {
        problems.push({ path: `${p}/${key}`, message: `unknown field "${key}" in ${t}` });
        continue;
      }
      const allowed = enumFields[key];
      if (allowed && typeof item === 'string' && !allowed.includes(item)) {
        problems.push({ path: `${p}/${key}`, message: `"${item}" is not one of ${allowed.join(', ')}` });
      }
      if (key === 'seccompProfile' && !seccompTypes.includes(String((item as { type?: unknown })?.type))) {
        problems.push({ path: `${p}/${key}/type`, message: `seccomp profile type must be one of ${seccompTypes.join(', ')}` });
      }
      walk(item, field.type, `${p}/${key}`);
    }
  };
  walk(value, type, path);
  return problems;
}

function valuesAt(value: unknown, segments: readonly string[], path = ''): { path: string; value: unknown }[] {
  if (segments.length === 0) return [{ path, value }];
  const [head, ...rest] = segments as [string, ...string[]];
  if (head === '*') return Array.isArray(value) ? value.flatMap((v, i) => valuesAt(v, rest, `${path}/${i}`)) : [];
  const next = (value as Record<string, unknown> | undefined)?.[head];
  return next === undefined ? [] : valuesAt(next, rest, `${path}/${head}`);
}

/** Model type of a core object, e.g. apps/v1 Deployment -> V1Deployment; undefined for custom resources. */
export function coreModelType(apiVersion: string, kind: string): string | undefined {
  const version = apiVersion.split('/').pop() ?? '';
  const type = `${version.charAt(0).toUpperCase()}${version.slice(1)}${kind}`;
  return attributes(type) ? type : undefined;
}

export function checkCoreObject(object: { apiVersion: string; kind: string }): StrictProblem[] {
  const type = coreModelType(object.apiVersion, object.kind);
  if (!type) return [{ path: '', message: `${object.apiVersion} ${object.kind} is not a core type` }];
  const problems = checkAgainstModel(object, type);
  for (const [path, allowed] of Object.entries(pathEnums[object.kind] ?? {})) {
    for (const found of valuesAt(object, path.split('/').slice(1))) {
      if (!allowed.includes(String(found.value))) problems.push({ path: found.path, message: `"${String(found.value)}" is not one of ${allowed.join(', ')}` });
    }
  }
  return problems;
}
