// warm-compile-cache <workspace dir>: fills Node's on-disk compile cache (NODE_COMPILE_CACHE, set
// by the image) with the code a service compiles when it starts, at build time, so a pod's cold
// start reads V8's code cache instead of compiling its module graph again (bench/footprint.mjs
// --images measures the effect). It runs in the final image, as its user and with its
// NODE_OPTIONS, because the cache is keyed by each file's path, the Node version and V8's flags.
// It imports the service's app (the whole graph its entry point loads statically, without
// running the entry point, which would need its configuration) and the packages the kit loads
// when a service makes its clients (packages/kit/src/sdk.ts), those in this image's closure.
import { createRequire, flushCompileCache, getCompileCacheDir } from 'node:module';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const [workspace] = process.argv.slice(2);
if (!workspace) throw new Error('usage: warm-compile-cache <workspace dir>');
if (!getCompileCacheDir()) throw new Error('NODE_COMPILE_CACHE is not set, or its directory is not writable');

const dir = resolve(workspace);
await import(pathToFileURL(`${dir}/dist/app.js`).href);
const require = createRequire(`${dir}/dist/app.js`);
const kit = createRequire(require.resolve('@avatar-pipeline/kit/sdk'));
for (const name of ['@aws-sdk/client-s3', '@aws-sdk/client-dynamodb', '@aws-sdk/lib-dynamodb', 'cloudevents']) {
  try {
    kit(name);
  } catch (err) {
    if (err.code !== 'MODULE_NOT_FOUND') throw err;
  }
}
flushCompileCache();
