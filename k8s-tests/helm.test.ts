/**
 * The committed chart under the real helm CLI (helm.sh/helm/v3, built from the Go module proxy):
 * `helm lint --strict` passes with every values file, the namespace, registry and host an operator
 * sets land everywhere they belong and change nothing else, each value changes exactly the
 * objects it should, and Jobs are named after their spec (a new image is a new Job).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { SHARED_CONFIG, environmentNames, valuesFile, type EnvironmentName } from '@avatar-pipeline/cdk8s';
import { loadConfig } from '@avatar-pipeline/kit/config';
import { authEnv, playerAuthSettings } from '@avatar-pipeline/kit/player-auth-config';
import { goTool } from './support/go-tools.js';
import { helm, helmTemplate, valuesArgs } from './support/helm.js';
import { chartDir, type K8sObject } from './support/manifests.js';

const key = (o: K8sObject) => `${o.kind}/${o.metadata.name}`;
const byKey = (objects: readonly K8sObject[]) => new Map(objects.map((o) => [key(o), o]));
/** Jobs are named `<prefix>-<hash of their spec>`. */
const jobPrefix = (name: string) => name.replace(/-[0-9a-f]{10}$/, '');
const stableKey = (o: K8sObject) => (o.kind === 'Job' ? `Job/${jobPrefix(o.metadata.name)}` : key(o));

/** Every leaf path where `a` and `b` differ, with both values. */
function differences(a: unknown, b: unknown, path = ''): { path: string; from: unknown; to: unknown }[] {
  if (a && b && typeof a === 'object' && typeof b === 'object' && Array.isArray(a) === Array.isArray(b)) {
    const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
    return [...keys].flatMap((k) => differences((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], `${path}/${k}`));
  }
  return Object.is(a, b) ? [] : [{ path, from: a, to: b }];
}

/** The objects that differ between two renders (Jobs matched by prefix): changed, added, removed. */
function changedObjects(before: readonly K8sObject[], after: readonly K8sObject[]): string[] {
  const a = new Map(before.map((o) => [stableKey(o), o]));
  const b = new Map(after.map((o) => [stableKey(o), o]));
  const keys = [...new Set([...a.keys(), ...b.keys()])];
  return keys.filter((k) => differences(a.get(k), b.get(k)).length > 0).sort();
}

const set = (...pairs: string[]) => pairs.flatMap((p) => ['--set', p]);

beforeAll(async () => {
  await goTool('helm');
}, 20 * 60_000);

describe('charts/avatar-pipeline with the real helm', () => {
  it.each<[string, string[]]>([['values.yaml (defaults)', []], ...environmentNames.map((e): [string, string[]] => [valuesFile(e), valuesArgs(e)])])(
    'passes helm lint --strict with %s',
    async (_name, args) => {
      const result = await helm(['lint', '--strict', chartDir, ...args]);
      expect(result.output).toMatch(/1 chart\(s\) linted, 0 chart\(s\) failed/);
      expect(result.code).toBe(0);
    },
  );

  // values.schema.json: a misspelt or mistyped value is refused rather than silently ignored.
  it.each([
    ['a misspelt key', 'services.moderate.maxscale=3', /additional properties 'maxscale' not allowed/],
    ['an unknown mode', 's3Source.mode=poll', /value must be one of 'webhook', 'sqs'/],
    ['a string for a number', 'gateway.replicas=two', /got string, want integer/],
    ['a CORS origin with a path', 'corsOrigins={https://game.test/}', /does not match pattern/],
    ['a JWKS URL that is not one', 'auth.jwksUrls={keys.example/jwks.json}', /does not match pattern/],
  ])('refuses %s', async (_what, value, message) => {
    const result = await helm(['template', 'avatar-pipeline', chartDir, '--set', value]);
    expect(result.code).not.toBe(0);
    expect(result.output).toMatch(message);
  });

  it.each(environmentNames.map((e) => [e]))('gives every %s object the standard labels and the release namespace, and renders no Namespace', async (env) => {
    const objects = await helmTemplate(env, { namespace: 'team-avatars' });
    expect(objects.filter((o) => o.kind === 'Namespace')).toEqual([]);
    for (const o of objects) {
      expect(o.metadata.namespace, key(o)).toBe('team-avatars');
      expect(o.metadata.labels, key(o)).toMatchObject({
        'helm.sh/chart': expect.stringMatching(/^avatar-pipeline-\d+\.\d+\.\d+$/),
        'app.kubernetes.io/managed-by': 'Helm',
        'app.kubernetes.io/instance': 'avatar-pipeline',
        'app.kubernetes.io/version': expect.any(String),
      });
    }
  });

  // Two renders that differ only in the namespace, registry and public host: every difference is
  // that value replaced (the config hash and Job names follow from them), and none of the old is left.
  it.each(environmentNames.map((e) => [e]))('%s: puts a custom namespace, registry and host everywhere they belong, and changes nothing else', async (env) => {
    const values = (ns: string, registry: string, host: string) => ({ namespace: ns, extra: set(`image.registry=${registry}`, `gateway.ingress.host=${host}`) });
    const before = await helmTemplate(env, values('ns-one', 'registry-one.test', 'one.avatars.test'));
    const after = await helmTemplate(env, values('ns-two', 'registry-two.test:5000', 'two.avatars.test'));
    const replaced = (s: string) => s.replaceAll('ns-one', 'ns-two').replaceAll('registry-one.test', 'registry-two.test:5000').replaceAll('one.avatars.test', 'two.avatars.test');
    expect(after.map(stableKey).sort()).toEqual(before.map(stableKey).sort());
    const a = new Map(before.map((o) => [stableKey(o), o]));
    for (const o of after) {
      for (const d of differences(a.get(stableKey(o)), o)) {
        if (d.path === '/spec/template/metadata/annotations/avatar-pipeline~1config-hash' || d.path.endsWith('/avatar-pipeline/config-hash')) continue;
        if (o.kind === 'Job' && d.path === '/metadata/name') continue;
        expect(typeof d.from === 'string' ? replaced(d.from) : d.from, `${stableKey(o)} ${d.path}`).toBe(d.to);
      }
    }
    const text = JSON.stringify(after);
    for (const old of ['ns-one', 'registry-one.test', 'one.avatars.test']) expect(text).not.toContain(old);
    // Every image built from the repository comes from the custom registry.
    const images = [...text.matchAll(/"image":"([^"]+)"/g)].map((m) => m[1]!);
    expect(images.filter((i) => i.includes('/avatar-pipeline/')).every((i) => i.startsWith('registry-two.test:5000/avatar-pipeline/'))).toBe(true);
    if (env === 'eks') expect(text).toContain('"host":"two.avatars.test"');
  });

  const kind = () => helmTemplate('kind');
  it.each<[string, EnvironmentName, string[], string[]]>([
    ['a service scaling bound', 'kind', set('services.moderate.maxScale=9'), ['Service/moderate']],
    ['a service resource limit', 'kind', set('services.thumbnail.resources.limits.memory=1Gi'), ['Service/thumbnail']],
    ['an IAM role', 'eks', set('serviceAccounts.push.roleArn=arn:aws:iam::000000000000:role/other'), ['ServiceAccount/push']],
    ['the gateway replicas', 'kind', set('gateway.replicas=3'), ['Deployment/gateway']],
    ['the gateway Service type', 'kind', set('gateway.service.type=LoadBalancer'), ['Service/gateway']],
    ['the CORS origins', 'kind', set('corsOrigins={https://game.test}'), ['ConfigMap/gateway-nginx']],
    ['the moderation provider', 'kind', set('moderation.provider=rekognition'), ['Service/moderate']],
    ['the broker class', 'kind', set('broker.class=Kafka'), ['Broker/avatar-pipeline', 'Broker/avatar-pipeline-dead-letter']],
    ['the Prometheus selector labels', 'kind', set('monitoring.selectorLabels.team=games'), [...['moderate', 'presign', 'profile', 'push', 's3-source', 'subscribe', 'thumbnail'].map((s) => `PodMonitor/${s}`), 'PrometheusRule/avatar-pipeline']],
    [
      'the image tag',
      'kind',
      set('image.tag=v9'),
      ['CronJob/reconciler', 'Deployment/dev-issuer', 'Job/vapid-init', ...['moderate', 'presign', 'profile', 'push', 's3-source', 'subscribe', 'thumbnail'].map((s) => `Service/${s}`)],
    ],
    ['the reconciler schedule', 'kind', set('reconciler.schedule=0 * * * *'), ['CronJob/reconciler']],
    ['an IAM role of the reconciler', 'eks', set('serviceAccounts.reconciler.roleArn=arn:aws:iam::000000000000:role/other'), ['ServiceAccount/reconciler']],
    [
      'the table name (shared configuration: every service rolls)',
      'kind',
      set('aws.table=other'),
      ['ConfigMap/avatar-pipeline-env', 'Job/stand-ins-setup', ...['moderate', 'presign', 'profile', 'push', 's3-source', 'subscribe', 'thumbnail'].map((s) => `Service/${s}`)],
    ],
  ])('changing %s changes exactly the objects it should', async (_what, env, args, expected) => {
    const before = env === 'kind' ? await kind() : await helmTemplate(env);
    const after = await helmTemplate(env, { extra: args });
    expect(changedObjects(before, after)).toEqual(expected.sort());
  });

  it('takes auth.issuers in place of auth.issuer and its JWKS URL, in a configuration the services accept', async () => {
    const pools = ['https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_One', 'https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Two'];
    const shared = async (...args: string[]) => {
      const config = (await helmTemplate('eks', { extra: set(...args) })).find((o) => key(o) === `ConfigMap/${SHARED_CONFIG}`) as (K8sObject & { data?: Record<string, string> }) | undefined;
      return playerAuthSettings(loadConfig(authEnv, config?.data ?? {}));
    };
    expect(await shared(`auth.issuers={${pools.join(',')}}`, 'auth.clientIds={game,web}', 'auth.accessPlayerClaim=username')).toMatchObject({
      issuers: pools.map((issuer) => ({ issuer, jwksUrl: `${issuer}/.well-known/jwks.json` })),
      clientIds: ['game', 'web'],
      accessPlayerClaim: 'username',
    });
    const keys = ['https://keys.example/one', 'https://keys.example/two'];
    expect((await shared(`auth.issuers={${pools.join(',')}}`, `auth.jwksUrls={${keys.join(',')}}`)).issuers).toEqual(pools.map((issuer, i) => ({ issuer, jwksUrl: keys[i] })));
    // Without the dev issuer, an issuer's keys default to its well-known URL.
    expect((await shared(`auth.issuer=${pools[0]}`, 'auth.jwksUrl=')).issuers).toEqual([{ issuer: pools[0], jwksUrl: `${pools[0]}/.well-known/jwks.json` }]);
  });

  it('renders the optional parts only when enabled', async () => {
    const base = await helmTemplate('eks');
    const keda = await helmTemplate('eks', { extra: set('s3Source.keda.enabled=true') });
    expect(changedObjects(base, keda)).toEqual(['Deployment/s3-source', 'ScaledObject/s3-source', 'TriggerAuthentication/s3-source']);
    // With KEDA, its HPA owns the replica count: the Deployment states none.
    const deployment = (objects: K8sObject[]) => byKey(objects).get('Deployment/s3-source') as { spec: { replicas?: number } } | undefined;
    expect(deployment(base)?.spec.replicas).toBe(1);
    expect(deployment(keda)?.spec).not.toHaveProperty('replicas');
    const withoutPolicies = await helmTemplate('eks', { extra: set('networkPolicy.enabled=false') });
    expect(changedObjects(base, withoutPolicies)).toEqual(base.filter((o) => o.kind === 'NetworkPolicy').map(key).sort());
    const withoutReconciler = await helmTemplate('eks', { extra: set('reconciler.enabled=false') });
    expect(changedObjects(base, withoutReconciler)).toEqual(['CronJob/reconciler', 'NetworkPolicy/reconciler', 'SinkBinding/reconciler-to-broker']);
  });

  it('names Jobs after their spec: a new image tag is a new Job, the same values the same Job', async () => {
    const jobs = async (tag: string) => (await helmTemplate('kind', { extra: set(`image.tags.push=${tag}`) })).filter((o) => o.kind === 'Job').map((o) => o.metadata.name).sort();
    const [one, two, again] = await Promise.all([jobs('one'), jobs('two'), jobs('one')]);
    expect(one.map(jobPrefix)).toEqual(['stand-ins-setup', 'vapid-init']);
    expect(again).toEqual(one);
    // vapid-init runs the push image; the stand-ins' set-up does not.
    expect(two.filter((n) => !one.includes(n)).map(jobPrefix)).toEqual(['vapid-init']);
  });
});
