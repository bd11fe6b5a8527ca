/**
 * schemathesis (PyPI) against the local stack: it reads the gateway's merged /openapi.json and
 * generates requests from it (examples, boundary values, fuzzing, sequences), with a dev token,
 * and checks every answer: no 5xx, and status codes, content types, headers and bodies as the
 * document says. Bounded (examples per operation, seconds in all) so it fits in `npm test`; the
 * seed is fixed, so a failure reproduces. Its JUnit report lands in test-artifacts/.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pythonTool, pythonToolsSkipReason, requirePythonTools } from '../src/stand-ins/python-tools.js';
import { repoRoot, startStack, type Stack } from '../src/stack.js';
import { requireBuilt } from '../src/test-backends.js';

const services = ['presign', 'profile', 'subscribe'] as const;
/** What the issue asks: no server error, and nothing the document does not describe. */
const CHECKS = ['not_a_server_error', 'status_code_conformance', 'content_type_conformance', 'response_headers_conformance', 'response_schema_conformance'];
const skipped = pythonToolsSkipReason('schemathesis');

describe.skipIf(skipped)(`the public API under schemathesis${skipped ? ` (skipped: ${skipped})` : ''}`, () => {
  let dataDir: string;
  let stack: Stack;

  /** The stack's warnings and errors, shown when schemathesis fails (a 5xx is then explained). */
  const problems: string[] = [];

  beforeAll(async () => {
    requirePythonTools();
    requireBuilt(services);
    dataDir = await mkdtemp(join(tmpdir(), 'ap-schemathesis-'));
    stack = await startStack({
      dataDir,
      services,
      logLevel: 'warn',
      sink: (line) => {
        if (/"level":"(warn|error|fatal)"/.test(line) && !/"stream":"stderr"/.test(line)) problems.push(line);
      },
      // Out of reach, so generated requests reach the logic behind the limits instead of 429s.
      env: { ...process.env, RATE_LIMIT_UPLOADS: '1000000', RATE_LIMIT_SUBSCRIPTIONS: '1000000' },
    });
  }, 120_000);
  afterAll(async () => {
    await stack?.stop();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  it('finds no server error and no answer the OpenAPI document does not describe', async () => {
    // A moderator (a player too): every operation is reachable, the moderators' included.
    const token = await stack.mint('schemathesis-player', ['moderator']);
    const base = stack.gatewayUrl.replace('localhost', '127.0.0.1');
    const args = [
      'run', `${base}/openapi.json`,
      '--header', `Authorization: Bearer ${token}`,
      '--checks', CHECKS.join(','),
      '--max-examples', '15',
      '--max-time', '60',
      '--seed', '1',
      '--report', 'junit', '--report-dir', join(repoRoot, 'test-artifacts', 'schemathesis'),
      '--no-color',
    ];
    const { code, output } = await new Promise<{ code: number | null; output: string }>((resolve, reject) => {
      // In the data directory: it keeps a cache (.schemathesis, .hypothesis) where it runs.
      const child = spawn(pythonTool('schemathesis'), args, { cwd: dataDir, env: { ...process.env, SCHEMATHESIS_TELEMETRY: 'false' } });
      let output = '';
      child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
      child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
      child.once('error', reject);
      child.once('close', (exit) => resolve({ code: exit, output }));
    });
    expect(code, `${output}\nthe stack's warnings and errors:\n${problems.slice(-40).join('\n')}`.replaceAll(token, '<token>')).toBe(0);
    expect(output).toMatch(/Tested: 14\b/);
  }, 150_000);
});
