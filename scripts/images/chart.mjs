// How the kind chart runs each of our images, from what the real helm renders of
// charts/avatar-pipeline with values-kind.yaml (helm template, as skaffold does) turned into `podman run` arguments: user, read-only root,
// dropped capabilities, no privilege escalation, emptyDir volumes as tmpfs, resource limits, the
// environment (ConfigMap, Secrets, the container's own entries, K_SINK where a SinkBinding injects
// it), and what the kubelet and Knative mount: the service account token and the cluster CA where
// the token is automounted, the broker's OIDC token where a SinkBinding applies.
import { fileURLToPath } from 'node:url';
import { runnerImport } from 'vite';

const IMAGE_REPOSITORY = 'kind.local/avatar-pipeline/';
/** Where the kubelet mounts a pod's service account token, ca.crt and namespace. */
export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';
/** Where a SinkBinding mounts the token for its sink (file `token`) when Eventing's authentication-oidc is on. */
export const SINK_TOKEN_DIR = '/oidc';

/**
 * The objects `helm template` renders with an environment's values, with the helm the k8s tests
 * use (k8s-tests/support/helm.ts: built from its pinned Go module into k8s-tests/.bin on first
 * use). Vite's module runner loads that TypeScript as vitest would.
 */
export async function renderChart(environment) {
  const helmModule = fileURLToPath(new URL('../../k8s-tests/support/helm.ts', import.meta.url));
  const { module: helm } = await runnerImport(helmModule, { configFile: false, logLevel: 'error' });
  const { namespace, objects } = await helm.rendered(environment);
  return { namespace, objects };
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
    // <repository>/<target>:<tag>
    const target = container.image.slice(IMAGE_REPOSITORY.length).split(':')[0];
    return [{ kind: object.kind, name: object.metadata.name, target, pod, container }];
  });
}

/** Services a SinkBinding gives K_SINK. */
export function sinkBound(objects) {
  return new Set(objects.filter((o) => o.kind === 'SinkBinding').map((o) => o.spec.subject.name));
}

/** The pod's service account, and whether the kubelet mounts its token (the pod's setting first, then the account's). */
export function serviceAccount(objects, { pod }) {
  const name = pod.serviceAccountName ?? 'default';
  const account = objects.find((o) => o.kind === 'ServiceAccount' && o.metadata.name === name);
  return { name, automount: pod.automountServiceAccountToken ?? account?.automountServiceAccountToken ?? true };
}

/** An addressable's OIDC audience as Knative names it: `<group>/<kind>/<namespace>/<name>`, lower case. */
const audienceOf = (ref, namespace) => `${ref.apiVersion.split('/')[0]}/${ref.kind}/${ref.namespace ?? namespace}/${ref.name}`.toLowerCase();

/**
 * What the token a SinkBinding mounts for `workload` is for: its sink's audience (the broker's
 * ingress, which Knative derives; a sink given by URI names it in `sink.audience`).
 */
export function sinkAudience(objects, workload) {
  const binding = objects.find((o) => o.kind === 'SinkBinding' && o.spec.subject.name === workload);
  if (!binding) throw new Error(`no SinkBinding applies to ${workload}`);
  const { sink } = binding.spec;
  const audience = sink.audience ?? (sink.ref ? audienceOf(sink.ref, binding.metadata.namespace) : undefined);
  if (!audience) throw new Error(`SinkBinding ${binding.metadata.name}: no audience for its sink`);
  return audience;
}

/**
 * The audience Knative signs deliveries to each subscriber for, by Knative Service name: what the
 * chart's Triggers name (`subscriber.audience`; Serving sets none on a Knative Service).
 */
export function subscriberAudiences(objects) {
  const audiences = new Map();
  for (const trigger of objects.filter((o) => o.kind === 'Trigger' && o.spec.subscriber?.ref?.kind === 'Service')) {
    const { name } = trigger.spec.subscriber.ref;
    const audience = trigger.spec.subscriber.audience;
    if (!audience) throw new Error(`Trigger ${trigger.metadata.name} names no audience for ${name}: Knative would send no token`);
    if (audiences.has(name) && audiences.get(name) !== audience) throw new Error(`the Triggers delivering to ${name} name audiences ${audiences.get(name)} and ${audience}`);
    audiences.set(name, audience);
  }
  return audiences;
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
    else if (source.secretRef && !(source.secretRef.optional && !secrets[source.secretRef.name])) Object.assign(env, secret(source.secretRef.name));
    else if (source.secretRef) continue;
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
