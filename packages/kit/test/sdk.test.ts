/**
 * The AWS SDK clients and CloudEvents load when a service first uses them (src/sdk.ts), not when
 * it imports the kit: checked in a fresh node process on the built kit (dist, from `tsc -b`),
 * as the services load it.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

// Every module a service's start-up imports (the kit has no barrel: each is its own subpath).
const modules = ['aws', 'cloudevents', 'config', 'events', 'objects', 'readiness', 'server', 'service', 'table'].map((name) => fileURLToPath(new URL(`../dist/${name}.js`, import.meta.url)));

/** Runs `body` (an async ESM script with `kit` imported and `loaded()` listing the lazy packages in memory), returns what it prints. */
async function inNode(body: string): Promise<unknown> {
  const script = `
    import { createRequire } from 'node:module';
    const kit = Object.assign({}, ...(await Promise.all(${JSON.stringify(modules)}.map((file) => import(file)))));
    const cache = createRequire(import.meta.url).cache;
    const lazy = ['@aws-sdk/client-s3', '@aws-sdk/client-dynamodb', '@aws-sdk/lib-dynamodb', 'cloudevents'];
    const loaded = () => lazy.filter((name) => Object.keys(cache).some((file) => file.includes('/node_modules/' + name + '/')));
    ${body}
  `;
  const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', script], {
    env: { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
  });
  return JSON.parse(stdout);
}

describe('the kit loads the AWS SDK and CloudEvents on first use', () => {
  it('loads none of them when imported', async () => {
    expect(await inNode('console.log(JSON.stringify(loaded()));')).toEqual([]);
  });

  it('loads each where a service makes its client or its event endpoint', async () => {
    const result = await inNode(`
      const steps = {};
      kit.dynamoDocumentClient({ region: 'us-east-1' }).destroy();
      steps.dynamo = loaded();
      kit.s3Client({ region: 'us-east-1' }).destroy();
      steps.s3 = loaded();
      kit.toBinary({ id: '1', source: 'test', type: 'test', data: {} });
      steps.cloudevents = loaded();
      console.log(JSON.stringify(steps));
    `);
    expect(result).toEqual({
      dynamo: ['@aws-sdk/client-dynamodb', '@aws-sdk/lib-dynamodb'],
      s3: ['@aws-sdk/client-s3', '@aws-sdk/client-dynamodb', '@aws-sdk/lib-dynamodb'],
      cloudevents: ['@aws-sdk/client-s3', '@aws-sdk/client-dynamodb', '@aws-sdk/lib-dynamodb', 'cloudevents'],
    });
  });

  it("builds the SDK's own command classes, which its clients and aws-sdk-client-mock recognise", async () => {
    const result = await inNode(`
      const { GetCommand } = createRequire(import.meta.url)('@aws-sdk/lib-dynamodb');
      const readiness = kit.tableReadiness({ send: async (command) => command }, 'table');
      const command = await readiness();
      console.log(JSON.stringify({ instance: command instanceof GetCommand, input: command.input }));
    `);
    expect(result).toEqual({ instance: true, input: { TableName: 'table', Key: { pk: 'READINESS', sk: 'READINESS' } } });
  });
});
