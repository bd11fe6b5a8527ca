/** `npm start`: the whole stack from environment variables, until Ctrl-C. */
import { loadConfig } from '@avatar-pipeline/kit/config';
import { main } from '@avatar-pipeline/kit/server';
import { stackEnv, stackOptions } from './config.js';
import { repoRoot, startStack, type Stack } from './stack.js';
import { ChildStartError } from './supervision/supervisor.js';

function readyMessage(stack: Stack, dataDir: string): string {
  const url = stack.gatewayUrl;
  const names = Object.keys(stack.services).join(', ') || 'none built: run npx tsc -b';
  return [
    `avatar-pipeline ready on ${url} (services: ${names})`,
    `  open ${url}/ for the game client (sign in with any player id), or use the API:`,
    `  data in ${dataDir} (objects, table, issuer key; stop and delete it to start afresh)`,
    `  get a token:   TOKEN=$(curl -s -X POST ${url}/dev/token -H 'content-type: application/json' -d '{"playerId":"player-1"}' | sed -E 's/.*"token":"([^"]+)".*/\\1/')`,
    `  ask to upload: curl -s -X POST ${url}/v1/uploads -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' -d '{"contentType":"image/jpeg","contentLength":68988}'`,
    `  then POST the returned fields plus file=@photo.jpg (multipart) to the returned url, and poll ${url}/v1/uploads/<uploadId>`,
    '',
  ].join('\n');
}

main(async () => {
  // The SDK's notice that future releases need Node 22 would print seven lines per process at
  // every start (services inherit this); set the variable to false to see it.
  process.env['AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED'] ??= 'true';
  const config = loadConfig(stackEnv);
  const options = stackOptions(config, repoRoot);
  let stack: Stack;
  try {
    stack = await startStack(options);
  } catch (err) {
    // A service that never got ready, a port in use: one clear message, no stack trace.
    if (err instanceof ChildStartError || /already in use/.test((err as Error).message)) {
      process.stderr.write(`avatar-pipeline could not start: ${(err as Error).message}\n`);
      process.exit(1);
    }
    throw err;
  }
  process.stdout.write(readyMessage(stack, options.dataDir));

  let signals = 0;
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      signals += 1;
      // A second Ctrl-C means now: children are detached, so kill them with us via the guard.
      if (signals > 1) process.exit(130);
      stack.stop().then(
        () => process.exit(0),
        (err: unknown) => {
          process.stderr.write(`stopping failed: ${(err as Error).message}\n`);
          process.exit(1);
        },
      );
    });
  }
});
