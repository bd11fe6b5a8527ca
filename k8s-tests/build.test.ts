/**
 * The Dockerfile, the images' dependency closures and skaffold.yaml, checked without Docker or a
 * cluster: every service has a target on Node 24 that runs as a non-root user and carries only its
 * own production dependencies; skaffold builds exactly the images the chart runs, rendered by the
 * real helm as skaffold renders it (its release's values files and values). The real skaffold
 * parses and renders skaffold.yaml in skaffold.test.ts.
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { runtimeEnv } from '@avatar-pipeline/kit/runtime';
import { serviceNames } from '@avatar-pipeline/kit/topology';
import { environmentNames, type EnvironmentName } from '@avatar-pipeline/cdk8s';
import { lineage, parseDockerfile } from './support/dockerfile.js';
import { helmTemplate, NAMESPACE, RELEASE, rendered } from './support/helm.js';
import { chartDir, type K8sObject } from './support/manifests.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const read = (path: string) => readFileSync(new URL(`../${path}`, import.meta.url), 'utf8');
const dockerfile = parseDockerfile(read('Dockerfile'));
const stage = (name: string) => dockerfile.stages.find((s) => s.name === name);
const targets = [...serviceNames, 'dev-issuer'] as const;

describe('Dockerfile', () => {
  it('builds on Node 24 LTS', () => {
    expect(dockerfile.globalArgs['NODE_IMAGE']).toMatch(/^node:24(\.\d+)*(-[a-z]+)*(-slim)?$/);
    const names = new Set<string>();
    for (const s of dockerfile.stages) {
      expect(s.from === '${NODE_IMAGE}' || names.has(s.from), `${s.name} starts from ${s.from}`).toBe(true);
      names.add(s.name);
    }
  });

  it('installs with npm ci from the lockfile and compiles with tsc -b', () => {
    const build = stage('build')?.instructions.map((i) => `${i.keyword} ${i.args}`).join('\n') ?? '';
    expect(build).toMatch(/RUN .*npm ci\b/);
    expect(build).toMatch(/RUN npx tsc -b/);
  });

  it.each(targets.map((t) => [t]))('has a %s target: non-root, its own closure, its entry point', (target) => {
    const chain = lineage(dockerfile, target);
    expect(chain.map((s) => s.name)).toEqual([target, 'runtime']);
    const users = chain.flatMap((s) => s.instructions.filter((i) => i.keyword === 'USER').map((i) => i.args));
    expect(users).toEqual(['10001:10001']);
    const own = stage(target)?.instructions ?? [];
    expect(own.filter((i) => i.keyword === 'COPY' && i.args.startsWith('--from=')).map((i) => i.args)[0]).toBe(`--from=closure-${target} /out/ ./`);
    const workspace = target === 'dev-issuer' ? 'local' : `services/${target}`;
    expect(stage(`closure-${target}`)?.instructions.map((i) => i.args)).toEqual([`production-closure ${workspace}`]);
    const cmd = JSON.parse(own.find((i) => i.keyword === 'CMD')?.args ?? '[]') as string[];
    expect(cmd[0]).toBe('node');
    if (target !== 'dev-issuer') {
      expect(cmd).toEqual(['node', `services/${target}/dist/main.js`]);
      expect(existsSync(`${root}services/${target}/src/main.ts`), `services/${target}/src/main.ts`).toBe(true);
    }
  });

  it('has no heredocs, which buildah 1.28 (Debian bookworm, npm run test:images) cannot build', () => {
    const heredocs = dockerfile.stages.flatMap((s) => s.instructions.filter((i) => i.heredoc !== undefined).map((i) => `${s.name}: ${i.keyword} ${i.args}`));
    expect(heredocs).toEqual([]);
  });

  it("starts each service's process as the kit's serviceRuntime says, as the local stack does", () => {
    for (const target of serviceNames) {
      const pairs = lineage(dockerfile, target)
        .flatMap((s) => s.instructions.filter((i) => i.keyword === 'ENV'))
        .flatMap((i) => i.args.split(/\s+/));
      const env = Object.fromEntries(pairs.map((pair) => pair.split(/=(.*)/s).slice(0, 2)));
      expect({ NODE_OPTIONS: env['NODE_OPTIONS'], MALLOC_ARENA_MAX: env['MALLOC_ARENA_MAX'] }, target).toEqual(runtimeEnv(target));
    }
  });

  it("warms Node's compile cache in each service target, with the flags the service runs with", () => {
    expect(stage('runtime')?.instructions.find((i) => i.keyword === 'ENV')?.args).toMatch(/\bNODE_COMPILE_CACHE=\/app\/\.compile-cache\b/);
    for (const target of serviceNames) {
      const own = (stage(target)?.instructions ?? []).map((i) => `${i.keyword} ${i.args}`);
      const warm = own.indexOf(`RUN ["node", "/usr/local/lib/warm-compile-cache.mjs", "services/${target}"]`);
      expect(warm, target).toBeGreaterThan(own.findIndex((i) => i.startsWith('ENV NODE_OPTIONS=')));
      expect(own.findIndex((i) => i.startsWith('ENV NODE_OPTIONS=')), target).toBeGreaterThan(-1);
    }
  });

  it('keeps every workspace manifest in the build context and leaves out installs and builds', () => {
    const ignore = read('.dockerignore').split('\n').filter((l) => l && !l.startsWith('#'));
    for (const pattern of ['**/node_modules', '**/dist', '.git']) expect(ignore).toContain(pattern);
    const workspaces = (JSON.parse(read('package.json')) as { workspaces: string[] }).workspaces;
    for (const ws of workspaces) {
      const excluded = ignore.some((p) => p === `${ws}/*` || p === ws) && !ignore.includes(`!${ws}/package.json`);
      expect(excluded, `${ws}/package.json must stay in the context`).toBe(false);
    }
  });
});

describe('image dependency closures', () => {
  // The script is a file of the build context that the build stage copies in.
  const copy = stage('build')?.instructions.find((i) => i.keyword === 'COPY' && i.args.endsWith(' /usr/local/bin/production-closure'));
  const script = copy ? read(copy.args.split(/\s+/).at(-2) ?? '') : '';
  const command = /^npm ls [^>\n]*/m.exec(script)?.[0]?.trim() ?? '';

  /** The packages (by name) of a workspace's production closure, from the Dockerfile's own npm ls. */
  const closure = async (workspace: string): Promise<Set<string>> => {
    const args = command.replace(/^npm /, '').replace('"$1"', workspace).split(/\s+/);
    const { stdout } = await promisify(execFile)('npm', args, { cwd: root, maxBuffer: 16 * 1024 * 1024 });
    return new Set(
      stdout
        .split('\n')
        .filter((line) => line.includes('node_modules/'))
        .map((line) => line.slice(line.lastIndexOf('node_modules/') + 'node_modules/'.length)),
    );
  };

  /** Every service's closure, computed once for the tests below (npm ls takes a while). */
  let computed: Promise<Map<string, Set<string>>> | undefined;
  const serviceClosures = () => (computed ??= Promise.all(serviceNames.map(async (s) => [s, await closure(`services/${s}`)] as const)).then((entries) => new Map(entries)));

  it('are computed by the same npm command as in the Dockerfile', () => {
    expect(command).toBe('npm ls --omit=dev --all --parseable --workspace "$1"');
  });

  it('hold the moderation model only in moderate and sharp only in moderate and thumbnail', async () => {
    const closures = await serviceClosures();
    const holders = (predicate: (pkg: string) => boolean) =>
      serviceNames.filter((s) => [...(closures.get(s) ?? [])].some(predicate));
    expect(holders((p) => p === 'nsfwjs' || p.startsWith('@tensorflow/'))).toEqual(['moderate']);
    expect(holders((p) => p === 'sharp' || p.startsWith('@img/sharp'))).toEqual(['moderate', 'thumbnail']);
    const devOnly = ['vitest', 'typescript', '@20minutes/s3rver', 'dynalite', 'aws-sdk-client-mock', 'web-push-testing', 'cdk8s', '@avatar-pipeline/local'];
    expect(holders((p) => devOnly.includes(p))).toEqual([]);
    for (const s of serviceNames) {
      expect(closures.get(s), s).toContain(`@avatar-pipeline/${s}`);
      expect(closures.get(s), s).toContain('@avatar-pipeline/kit');
    }
    expect(closures.get('push')).toContain('@avatar-pipeline/webpush');
  });

  it("hold every production dependency a service declares (one also listed as a dev dependency would be dropped), and the VAPID stores' backends only where VAPID keys are read", async () => {
    const closures = await serviceClosures();
    for (const s of serviceNames) {
      const manifest = JSON.parse(readFileSync(`${root}services/${s}/package.json`, 'utf8')) as { dependencies?: Record<string, string> };
      const missing = Object.keys(manifest.dependencies ?? {}).filter((dep) => !closures.get(s)?.has(dep));
      expect(missing, s).toEqual([]);
    }
    // packages/webpush's optional peers: push (and its vapid-init Job) and subscribe read keys; profile only stores subscriptions.
    const backends = ['web-push', '@aws-sdk/client-ssm', '@kubernetes/client-node'];
    expect(serviceNames.filter((s) => backends.every((b) => closures.get(s)?.has(b)))).toEqual(['subscribe', 'push']);
    expect(serviceNames.filter((s) => backends.some((b) => closures.get(s)?.has(b)))).toEqual(['subscribe', 'push']);
  });
});

/** What is read here of skaffold.yaml (skaffold.test.ts checks the schema, the rendering and the image rewriting). */
interface Artifact {
  image: string;
  docker: { dockerfile: string; target: string };
}
interface Build {
  local: { push?: boolean };
  artifacts: Artifact[];
}
interface HelmRelease {
  name: string;
  chartPath: string;
  namespace: string;
  valuesFiles?: string[];
  setValues?: Record<string, string>;
  setValueTemplates?: Record<string, string>;
}
interface Manifests {
  helm?: { releases: HelmRelease[] };
}
interface Skaffold {
  build: Build;
  manifests: Manifests;
  portForward: { resourceType: string; resourceName: string; namespace: string; port: number }[];
  profiles: { name: string; activation?: { kubeContext: string }[]; build?: Build; manifests?: Manifests }[];
}

function imagesIn(objects: readonly K8sObject[]): string[] {
  const images: string[] = [];
  const walk = (value: unknown, key?: string): void => {
    if (key === 'image' && typeof value === 'string') images.push(value);
    else if (Array.isArray(value)) value.forEach((v) => walk(v));
    else if (value && typeof value === 'object') for (const [k, v] of Object.entries(value)) walk(v, k);
  };
  objects.forEach((o) => walk(o));
  return images;
}

/** An image reference without its tag (a registry port is not a tag). */
const untagged = (image: string) => image.replace(/:[\w][\w.-]*$/, '');
/** skaffold's template variable for an artifact's tag: IMAGE_TAG_<image, every other character an underscore>. */
const tagVariable = (image: string) => `IMAGE_TAG_${image.replace(/[^A-Za-z0-9]/g, '_')}`;

describe('skaffold.yaml', () => {
  const config = parse(read('skaffold.yaml')) as Skaffold;
  const profile = (name: string) => config.profiles.find((p) => p.name === name);
  /** What `skaffold run [-p <profile>]` builds, and the helm release it renders (a profile's replaces the base's). */
  const artifacts = (name: EnvironmentName) => (profile(name)?.build ?? config.build).artifacts;
  const release = (name: EnvironmentName): HelmRelease => {
    const releases = (profile(name)?.manifests ?? config.manifests).helm?.releases ?? [];
    expect(releases).toHaveLength(1);
    return releases[0]!;
  };
  /** `helm template` as skaffold runs it for the release, each artifact tagged `t-<target>`. */
  const skaffoldRender = (name: EnvironmentName) => {
    const r = release(name);
    const tags = artifacts(name).map((a) => `image.tags.${a.docker.target}=t-${a.docker.target}`);
    const values = Object.entries(r.setValues ?? {}).map(([k, v]) => `${k}=${v}`);
    return helmTemplate(name, { namespace: r.namespace, extra: [...values, ...tags].flatMap((v) => ['--set', v]) });
  };

  it('has the kind (default) and eks profiles', () => {
    expect(config.profiles.map((p) => p.name)).toEqual(['kind', 'eks']);
    expect(profile('kind')?.build).toBeUndefined();
    expect(profile('kind')?.activation).toEqual([{ kubeContext: 'kind-.*' }]);
    expect(profile('eks')?.build?.local.push).toBe(true);
  });

  it.each(environmentNames.map((e) => [e]))('%s: renders the chart with the environment’s values file, every artifact’s tag set as its image.tags value', (name) => {
    const r = release(name);
    expect({ name: r.name, chartPath: r.chartPath, namespace: r.namespace }).toEqual({ name: RELEASE, chartPath: 'charts/avatar-pipeline', namespace: NAMESPACE });
    expect(fileURLToPath(new URL(`../${r.chartPath}`, import.meta.url))).toBe(chartDir);
    expect(r.valuesFiles).toEqual([`charts/avatar-pipeline/values-${name}.yaml`]);
    expect(r.setValueTemplates).toEqual(Object.fromEntries(artifacts(name).map((a) => [`image.tags.${a.docker.target}`, `{{.${tagVariable(a.image)}}}`])));
  });

  /** `<registry>/<repository>/` of the images built from the repository: the values file's, or skaffold's (its release's setValues). */
  const imagePrefix = async (name: EnvironmentName, asSkaffold: boolean) => {
    const image = (await rendered(name)).values['image'] as { registry: string; repository: string };
    // skaffold -p eks leaves the registry to --default-repo (release setValues image.registry: "").
    const registry = asSkaffold ? (release(name).setValues?.['image.registry'] ?? image.registry) : image.registry;
    return `${registry ? `${registry}/` : ''}${image.repository}/`;
  };

  it.each(environmentNames.map((e) => [e]))('%s: builds one artifact per image the chart runs, from its Dockerfile target', async (name) => {
    const prefix = await imagePrefix(name, true);
    for (const a of artifacts(name)) {
      expect(a.docker.dockerfile).toBe('Dockerfile');
      expect(a.image).toBe(`${prefix}${a.docker.target}`);
      expect(stage(a.docker.target), a.docker.target).toBeDefined();
    }
    const built = new Set(artifacts(name).map((a) => a.image));
    const used = imagesIn(await skaffoldRender(name));
    const ours = used.filter((i) => i.startsWith(prefix));
    expect(new Set(ours.map(untagged))).toEqual(built);
    // Each runs with the tag skaffold built it with (the VAPID init Job too, with the push image).
    for (const i of ours) expect(i, 'tagged by skaffold').toBe(`${untagged(i)}:t-${untagged(i).slice(prefix.length)}`);
    for (const i of used.filter((x) => !ours.includes(x))) expect(i, 'third-party images are pinned').toMatch(/:[\w][\w.-]*$/);
    for (const i of used) expect(i).not.toMatch(/:latest$/);
  });

  it.each(environmentNames.map((e) => [e]))('%s: tags the images with the chart’s appVersion when nothing sets a tag', async (name) => {
    const prefix = await imagePrefix(name, false);
    const appVersion = (parse(readFileSync(`${chartDir}/Chart.yaml`, 'utf8')) as { appVersion: string }).appVersion;
    const ours = imagesIn((await rendered(name)).objects).filter((i) => i.startsWith(prefix));
    expect(new Set(ours)).toEqual(new Set(artifacts(name).map((a) => `${prefix}${a.docker.target}:${appVersion}`)));
  });

  it('forwards the gateway, which the kind chart serves on that port in the release namespace', async () => {
    const [forward] = config.portForward;
    expect(forward?.resourceType).toBe('service');
    const gateway = (await rendered('kind')).objects.find((o) => o.kind === 'Service' && o.apiVersion === 'v1' && o.metadata.name === forward?.resourceName) as
      | (K8sObject & { spec: { ports: { port: number }[] } })
      | undefined;
    expect(gateway?.metadata.namespace).toBe(forward?.namespace);
    expect(release('kind').namespace).toBe(forward?.namespace);
    expect(gateway?.spec.ports.map((p) => p.port)).toContain(forward?.port);
  });
});
