/** Pretty logs on a terminal (`npm start`), JSON everywhere else. */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '@avatar-pipeline/kit/config';
import { createLogger } from '@avatar-pipeline/kit/logger';
import { stackEnv } from '../src/config.js';
import { prettyLogLine } from '../src/output/log-format.js';
import { sinkDestination } from '../src/output/log-sink.js';
import { repoRoot } from '../src/stack.js';
import { palette } from '../src/output/terminal.js';

const plain = palette(false);

/** The lines a real kit logger writes. */
function logged(write: (logger: ReturnType<typeof createLogger>) => void): string[] {
  const lines: string[] = [];
  write(createLogger('moderate', 'debug', sinkDestination((line) => lines.push(line))));
  return lines;
}

describe('pretty log lines', () => {
  it('shows time, level, service and message, then the fields that follow an upload, then the rest', () => {
    const [line] = logged((logger) =>
      logger.child({ reqId: 'r-1' }).info({ status: 200, playerId: 'player-1', uploadId: '0190a0b0-0000-7000-8000-000000000001', ceId: 'c.approved', note: 'two words', n: 3 }, 'event handled'),
    );
    const pretty = prettyLogLine(line!, plain);
    const time = new Date((JSON.parse(line!) as { time: string }).time);
    const clock = [time.getHours(), time.getMinutes(), time.getSeconds()].map((n) => String(n).padStart(2, '0')).join(':');
    expect(pretty).toBe(
      `${clock}.${String(time.getMilliseconds()).padStart(3, '0')} INFO  moderate    event handled  ` +
        'uploadId=0190a0b0-0000-7000-8000-000000000001 playerId=player-1 ceId=c.approved status=200 reqId=r-1 note="two words" n=3',
    );
  });

  it('prints an error with its message as a field and its stack below', () => {
    const [line] = logged((logger) => logger.error({ err: new Error('disk full'), uploadId: 'u' }, 'write failed'));
    const [first, ...stack] = prettyLogLine(line!, plain).split('\n');
    expect(first).toMatch(/^\d\d:\d\d:\d\d\.\d{3} ERROR moderate {4}write failed {2}uploadId=u err="disk full"$/);
    expect(stack.length).toBeGreaterThan(0);
    expect(stack[0]).toMatch(/^ {4}at /);
  });

  it('colors the level on a color terminal', () => {
    const colored = palette(true);
    const [info, warn] = logged((logger) => {
      logger.info('fine');
      logger.warn('careful');
    });
    expect(prettyLogLine(info!, colored)).toContain('\x1b[32mINFO \x1b[0m');
    expect(prettyLogLine(warn!, colored)).toContain('\x1b[33mWARN \x1b[0m');
    // pino's numeric levels (a logger without the kit's labels) too.
    expect(prettyLogLine('{"level":50,"time":0,"service":"x","msg":"m"}', colored)).toContain('\x1b[31mERROR\x1b[0m');
  });

  it('leaves alone what is not a JSON object', () => {
    for (const line of ['plain text from a child', '{not json', '[1,2,3]', '"a string"', '']) expect(prettyLogLine(line, plain)).toBe(line);
  });
});

const output = join(repoRoot, 'local', 'dist', 'output', 'log-sink.js');
const sampleLine = JSON.stringify({ level: 'info', time: '2026-01-02T03:04:05.678Z', service: 'profile', msg: 'upload ready', uploadId: 'u-1' });
/** A process that writes one log line through the stack's stdout sink (`format`: the LOG_FORMAT it is given). */
const script = (format?: string) =>
  `import { stdoutSink } from ${JSON.stringify(output)}; stdoutSink(${format ? JSON.stringify(format) : ''})(${JSON.stringify(sampleLine)});`;

function runNode(code: string, viaTerminal = false): Promise<string> {
  const node = [process.execPath, '--input-type=module', '-e', code];
  // util-linux `script` runs the command on a pseudo-terminal, as `npm start` in a terminal is.
  const [command, ...args] = viaTerminal ? ['script', '-qec', node.map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' '), '/dev/null'] : node;
  return new Promise((resolve, reject) => {
    const child = spawn(command!, args, { env: { PATH: process.env['PATH'] ?? '', TERM: 'xterm-256color' }, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString('utf8')));
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`exited with ${code}: ${out}`))));
  });
}

describe('the stack on stdout', () => {
  it('keeps JSON lines when stdout is not a terminal (CI, pipes), and pretty-prints on request', async () => {
    expect(existsSync(output), `${output} is missing: run npx tsc -b`).toBe(true);
    expect(await runNode(script())).toBe(`${sampleLine}\n`);
    expect(await runNode(script('pretty'))).toMatch(/^\d\d:\d\d:\d\d\.678 INFO  profile {5}upload ready {2}uploadId=u-1\n$/);
  });

  it('takes LOG_FORMAT json or pretty, nothing else', () => {
    expect(loadConfig(stackEnv, { LOG_FORMAT: 'pretty' }).LOG_FORMAT).toBe('pretty');
    expect(() => loadConfig(stackEnv, { LOG_FORMAT: 'xml' })).toThrow(/LOG_FORMAT/);
  });

  it.runIf(existsSync('/usr/bin/script'))('pretty-prints in color on a terminal, and keeps JSON there on request', async () => {
    const pretty = await runNode(script(), true);
    expect(pretty).toContain('\x1b[32mINFO \x1b[0m');
    expect(pretty.replace(/\x1b\[\d+m/g, '')).toMatch(/^\d\d:\d\d:\d\d\.678 INFO  profile {5}upload ready {2}uploadId=u-1\r?\n$/);
    expect(await runNode(script('json'), true)).toBe(`${sampleLine}\r\n`);
  });
});
