// How the kind chart runs each of our images, read from charts/kind/templates and turned into
// `podman run` arguments: user, read-only root, dropped capabilities, no privilege escalation,
// emptyDir volumes as tmpfs, resource limits, and the environment (ConfigMap, Secrets, the
// container's own entries, K_SINK where a SinkBinding injects it).
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';

const IMAGE_REPOSITORY = 'kind.local/avatar-pipeline/';

export async function readChart(dir) {
  const files = (await readdir(dir)).filter((name) => /\.ya?ml$/.test(name)).sort();
  const texts = await Promise.all(files.map((name) => readFile(join(dir, name), 'utf8')));
  return texts.flatMap((text) => parseAllDocuments(text).map((doc) => doc.toJS())).filter(Boolean);
}

/**
 * Every workload that runs one of our images: Knative Services, Deployments and Jobs, each with
 * its pod spec and the Dockerfile target of its image (the image name's last segment).
 */
export function workloads(objects) {
  return objects.flatMap((object) => {
    const pod = object.spec?.template?.spec;
    const container = pod?.containers?.[0];
    if (!['Service', 'Deployment', 'Job'].includes(object.kind) || !container?.image?.startsWith(IMAGE_REPOSITORY)) return [];
    return [{ kind: object.kind, name: object.metadata.name, target: container.image.slice(IMAGE_REPOSITORY.length), pod, container }];
  });
}

/** Services a SinkBinding gives K_SINK. */
export function sinkBound(objects) {
  return new Set(objects.filter((o) => o.kind === 'SinkBinding').map((o) => o.spec.subject.name));
}

/**
 * The container's environment as Kubernetes assembles it: envFrom sources in order, then `env`
 * entries. Secrets come from `secrets` (the test's own values), never from the chart.
 */
export function containerEnv(objects, container, secrets) {
  const configMap = (name) => {
    const map = objects.find((o) => o.kind === 'ConfigMap' && o.metadata.name === name);
    if (!map) throw new Error(`the chart has no ConfigMap ${name}`);
    return map.data ?? {};
  };
  const secret = (name) => {
    if (!secrets[name]) throw new Error(`the chart uses Secret ${name}, which this test does not supply`);
    return secrets[name];
  };
  const env = {};
  for (const source of container.envFrom ?? []) {
    if (source.configMapRef) Object.assign(env, configMap(source.configMapRef.name));
    else if (source.secretRef) Object.assign(env, secret(source.secretRef.name));
    else throw new Error(`unsupported envFrom ${JSON.stringify(source)}`);
  }
  for (const entry of container.env ?? []) {
    const ref = entry.valueFrom?.secretKeyRef;
    if ('value' in entry) env[entry.name] = String(entry.value);
    else if (ref && secret(ref.name)[ref.key] !== undefined) env[entry.name] = secret(ref.name)[ref.key];
    else throw new Error(`unsupported env entry ${JSON.stringify(entry)}`);
  }
  return env;
}

const LOOPBACK = new Set(['localhost', '127.0.0.1', '[::1]']);

/**
 * Points every in-cluster URL (`http[s]://<service>.<namespace>.svc[.cluster.local][:port]/path`) at
 * the loopback stand-in for that service, keeping the path. Any URL left that is not on loopback
 * is an error: nothing may leave the machine.
 */
export function toStandIns(env, standIns) {
  return Object.fromEntries(
    Object.entries(env).map(([name, value]) => {
      const match = /^https?:\/\/([a-z0-9-]+)\.[a-z0-9-]+\.svc(?:\.cluster\.local)?(?::\d+)?(\/.*)?$/.exec(value);
      if (match) {
        const origin = standIns[match[1]];
        if (!origin) throw new Error(`${name}=${value}: no local stand-in for ${match[1]}`);
        return [name, `${origin}${match[2] ?? ''}`];
      }
      if (/^https?:\/\//.test(value) && !LOOPBACK.has(new URL(value).hostname)) throw new Error(`${name}=${value}: not a loopback address`);
      return [name, value];
    }),
  );
}

/** Kubernetes quantities (`16Mi`, `1536Mi`, `1G`) in bytes; CPU (`500m`, `2`) in cores. */
const bytes = (quantity) => {
  const match = /^(\d+)(Ki|Mi|Gi|k|M|G)?$/.exec(quantity);
  if (!match) throw new Error(`unsupported quantity ${quantity}`);
  const unit = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, k: 1e3, M: 1e6, G: 1e9 }[match[2]] ?? 1;
  return Number(match[1]) * unit;
};
const cores = (quantity) => (quantity.endsWith('m') ? Number(quantity.slice(0, -1)) / 1000 : Number(quantity));

/** `podman run` flags for the pod's security context, volumes and limits. */
export function runFlags({ pod, container }) {
  const security = { ...pod.securityContext, ...container.securityContext };
  if (security.runAsUser === undefined) throw new Error(`${container.name}: the chart sets no runAsUser`);
  const flags = ['--user', `${security.runAsUser}:${security.runAsGroup ?? security.runAsUser}`];
  // podman's --read-only adds writable tmpfs of its own unless told not to: only the chart's volumes are writable.
  if (security.readOnlyRootFilesystem) flags.push('--read-only', '--read-only-tmpfs=false');
  if (security.capabilities?.drop?.includes('ALL')) flags.push('--cap-drop', 'ALL');
  if (security.allowPrivilegeEscalation === false) flags.push('--security-opt', 'no-new-privileges');
  // seccomp RuntimeDefault is podman's default profile.
  for (const mount of container.volumeMounts ?? []) {
    const volume = pod.volumes?.find((v) => v.name === mount.name);
    if (!volume?.emptyDir) throw new Error(`${container.name}: volume ${mount.name} is not an emptyDir`);
    const size = volume.emptyDir.sizeLimit ? `,size=${bytes(volume.emptyDir.sizeLimit)}` : '';
    flags.push('--tmpfs', `${mount.mountPath}:rw,mode=1777${size}`);
  }
  const limits = container.resources?.limits ?? {};
  if (limits.memory) flags.push('--memory', String(bytes(limits.memory)));
  if (limits.cpu) flags.push('--cpus', String(cores(String(limits.cpu))));
  return flags;
}
