/**
 * The real Prometheus rule engine: promtool (Prometheus 3.16, built from its Go module by
 * go-tools.ts) run on files written to a temporary directory. `test rules` evaluates the rules on
 * given series and compares the alerts they raise with the expected ones, labels and rendered
 * annotations included.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { stringify } from 'yaml';
import { goTool } from './go-tools.js';

const run = promisify(execFile);

export interface PromtoolResult {
  code: number;
  output: string;
}

/** Runs promtool in a directory holding `files` (name to content); arguments name the files. Never throws on a failed command. */
export async function promtool(files: Readonly<Record<string, string>>, args: readonly string[]): Promise<PromtoolResult> {
  const binary = await goTool('promtool');
  const dir = await mkdtemp(join(tmpdir(), 'promtool-'));
  try {
    for (const [name, content] of Object.entries(files)) await writeFile(join(dir, name), content);
    const { stdout, stderr } = await run(binary, args, { cwd: dir, maxBuffer: 8 * 1024 * 1024 });
    return { code: 0, output: stdout + stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : 1, output: `${e.stdout ?? ''}${e.stderr ?? ''}` };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** One input series of a rule test: `values` in promtool's expanding notation (`0 1x10`, `_` missing, `stale`). */
export interface InputSeries {
  series: string;
  values: string;
}

export interface ExpectedAlert {
  exp_labels: Record<string, string>;
  exp_annotations: Record<string, string>;
}

/** One unit test: series scraped every `interval`, the alerts expected at each evaluation time. */
export interface RuleTest {
  interval: string;
  input_series: InputSeries[];
  alert_rule_test: { eval_time: string; alertname: string; exp_alerts: ExpectedAlert[] }[];
}

/** A series selector as promtool's input takes it: `name{label="value",...}`. */
export const seriesOf = (name: string, labels: Readonly<Record<string, string>>) =>
  `${name}{${Object.entries(labels)
    .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
    .join(',')}}`;

/** `promtool test rules` of `tests` against the rule groups given (a PrometheusRule's spec.groups). */
export function testRules(groups: unknown, tests: readonly RuleTest[]): Promise<PromtoolResult> {
  const files = {
    'rules.yaml': stringify({ groups }),
    'tests.yaml': stringify({ rule_files: ['rules.yaml'], evaluation_interval: '30s', tests }),
  };
  return promtool(files, ['test', 'rules', 'tests.yaml']);
}
