/**
 * How each service's Node process is started, besides its entry point: the same in its image
 * (the Dockerfile's ENV for its target, which k8s-tests/build.test.ts holds to this table) and in
 * the local stack (local/src/supervision/service-env.ts).
 *
 *   --max-semi-space-size=1  caps V8's young generation at 1 MB semi-spaces. Unbounded, V8 sizes it
 *       from the machine's memory (up to 32-64 MB on a developer's machine or in a pod limited to
 *       768 MiB or more), and a service that allocates a lot while it starts (the AWS SDK, zod)
 *       keeps those pages: 10-17 MB of its idle RSS. In a pod limited to 256-384 MiB (the API
 *       services) V8 keeps its young generation under 5 MB by itself; with this cap the heavier
 *       pods and the local stack run as they do. bench/footprint.mjs measures the effect.
 *   MALLOC_ARENA_MAX=2       glibc makes a malloc arena per thread (V8's platform workers, libuv's
 *       pool, libvips' threads) and holds on to what each one held: two are enough for these
 *       processes, which have at most one core or two (their pods' CPU limits).
 */
import type { ServiceName } from './topology.js';

export interface ServiceRuntime {
  /** NODE_OPTIONS: one option (the Dockerfile's ENV takes plain KEY=value pairs, without spaces). */
  nodeOptions: string;
  /** MALLOC_ARENA_MAX. */
  mallocArenaMax: number;
}

const runtime: ServiceRuntime = { nodeOptions: '--max-semi-space-size=1', mallocArenaMax: 2 };

export const serviceRuntime: Readonly<Record<ServiceName, ServiceRuntime>> = {
  presign: runtime,
  's3-source': runtime,
  moderate: runtime,
  thumbnail: runtime,
  profile: runtime,
  subscribe: runtime,
  push: runtime,
};

/** The environment variables that start a service's process as `serviceRuntime` says. */
export function runtimeEnv(service: ServiceName): Record<'NODE_OPTIONS' | 'MALLOC_ARENA_MAX', string> {
  const { nodeOptions, mallocArenaMax } = serviceRuntime[service];
  return { NODE_OPTIONS: nodeOptions, MALLOC_ARENA_MAX: String(mallocArenaMax) };
}
