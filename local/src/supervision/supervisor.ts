/**
 * Runs one service as a child process: waits for its /readyz, forwards its log lines, restarts it
 * with backoff when it crashes, and stops it with SIGTERM (SIGKILL after a grace period).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '@avatar-pipeline/kit/logger';
import { childLogLine, type LogSink } from '../output/log-sink.js';

export interface ChildSpec {
  name: string;
  /** The service's entry point (services/<name>/dist/main.js). */
  script: string;
  cwd: string;
  port: number;
  env: Readonly<Record<string, string | undefined>>;
  /** Modules preloaded with `node --import`. */
  preload?: readonly string[];
}

/** The child guard's build output under the repository `root`: a preload runs as JavaScript only. */
export function childGuardScript(root: string): string {
  return join(root, 'local', 'dist', 'supervision', 'child-guard.js');
}

export interface SupervisorOptions {
  logger: Logger;
  sink: LogSink;
  /** How long a start may take until /readyz answers 200. */
  readyTimeoutMs: number;
  /** How long a stopping child may drain before it is killed. */
  stopGraceMs: number;
  /** First restart delay; doubles per consecutive crash up to maxRestartDelayMs. */
  restartDelayMs?: number;
  maxRestartDelayMs?: number;
}

/** A child that exited or never answered /readyz: names it and quotes its last log lines. */
export class ChildStartError extends Error {
  constructor(
    readonly service: string,
    problem: string,
    readonly lastLines: readonly string[],
  ) {
    super(`${service} ${problem}${lastLines.length ? `; its last log lines:\n${lastLines.join('\n')}` : ' (it logged nothing)'}`);
    this.name = 'ChildStartError';
  }
}

const KEPT_LINES = 20;
/** A child that stayed up this long has recovered: its next crash restarts it quickly again. */
const STABLE_MS = 30_000;

export class SupervisedChild {
  readonly name: string;
  readonly url: string;
  private process: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  private lines: string[] = [];
  private ready = false;
  private stopping = false;
  private crashes = 0;
  private restartTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly spec: ChildSpec,
    private readonly options: SupervisorOptions,
  ) {
    this.name = spec.name;
    this.url = `http://127.0.0.1:${spec.port}`;
  }

  get isReady(): boolean {
    return this.ready;
  }

  /** The running process's id (it changes when the child is restarted), for reading its CPU and memory from /proc. */
  get pid(): number | undefined {
    const child = this.process;
    return child && child.exitCode === null && child.signalCode === null ? child.pid : undefined;
  }

  /** The child's most recent log lines (for error messages). */
  get lastLines(): readonly string[] {
    return this.lines;
  }

  /** Spawns the child and resolves once it is ready; rejects (and kills it) if it never gets there. */
  async start(): Promise<void> {
    this.spawnChild();
    try {
      await this.waitReady();
    } catch (err) {
      await this.stop();
      throw err;
    }
  }

  async stop(): Promise<void> {
    this.stopping = true;
    clearTimeout(this.restartTimer);
    const child = this.process;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const drained = await Promise.race([this.exited.then(() => true), sleep(this.options.stopGraceMs, false)]);
    if (!drained) {
      this.options.logger.warn({ child: this.name, graceMs: this.options.stopGraceMs }, `${this.name} did not stop in time; killing it`);
      child.kill('SIGKILL');
      await this.exited;
    }
  }

  /**
   * Sends `signal` to the running child (fault injection: SIGKILL as a crash, SIGTERM as a
   * rollout's drain). Its exit is handled as any crash is: it is restarted with backoff unless the
   * child is being stopped. Returns the pid signalled, or undefined when no process runs.
   */
  signal(signal: NodeJS.Signals): number | undefined {
    const child = this.process;
    if (this.stopping || !child || child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return undefined;
    child.kill(signal);
    return child.pid;
  }

  private spawnChild(): void {
    const { spec } = this;
    const args = [...(spec.preload ?? []).flatMap((m) => ['--import', m]), spec.script];
    const child = spawn(process.execPath, args, {
      cwd: spec.cwd,
      env: { ...spec.env, PORT: String(spec.port) },
      // stdin stays open for the child guard; its own session keeps a terminal's Ctrl-C away
      // from it, so only the stack decides when it stops.
      stdio: ['pipe', 'pipe', 'pipe'],
      detached: true,
    });
    this.process = child;
    this.ready = false;
    const startedAt = Date.now();
    this.forward(child, 'stdout');
    this.forward(child, 'stderr');
    this.exited = new Promise<void>((resolve) => {
      child.once('exit', (code, signal) => {
        this.ready = false;
        resolve();
        if (!this.stopping) this.crashed(code, signal, Date.now() - startedAt);
      });
      child.once('error', (err) => {
        this.lines.push(`spawn failed: ${err.message}`);
        resolve();
      });
    });
  }

  private forward(child: ChildProcess, stream: 'stdout' | 'stderr'): void {
    const source = child[stream];
    if (!source) return;
    createInterface({ input: source, crlfDelay: Infinity }).on('line', (line) => {
      if (!line.trim()) return;
      const json = childLogLine(this.name, stream, line);
      this.lines.push(json);
      if (this.lines.length > KEPT_LINES) this.lines.shift();
      this.options.sink(json);
    });
  }

  private crashed(code: number | null, signal: NodeJS.Signals | null, uptimeMs: number): void {
    if (uptimeMs >= STABLE_MS) this.crashes = 0;
    const initial = this.options.restartDelayMs ?? 500;
    const delayMs = Math.min(initial * 2 ** this.crashes, this.options.maxRestartDelayMs ?? 15_000);
    this.crashes += 1;
    const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
    this.options.logger.warn({ child: this.name, code, signal, restartInMs: delayMs }, `${this.name} ${how}; restarting in ${delayMs} ms`);
    this.restartTimer = setTimeout(() => this.restart(), delayMs);
  }

  private restart(): void {
    if (this.stopping) return;
    this.spawnChild();
    this.waitReady().then(
      () => this.options.logger.info({ child: this.name }, `${this.name} restarted and ready`),
      (err: unknown) => this.options.logger.error({ child: this.name }, (err as Error).message),
    );
  }

  private async waitReady(): Promise<void> {
    const deadline = Date.now() + this.options.readyTimeoutMs;
    const child = this.process;
    while (Date.now() < deadline) {
      if (this.stopping) throw new ChildStartError(this.name, 'was stopped before it got ready', this.lines);
      if (!child || child.exitCode !== null || child.signalCode !== null) {
        const how = child?.signalCode ? `was killed by ${child.signalCode}` : `exited with code ${child?.exitCode ?? 'unknown'}`;
        throw new ChildStartError(this.name, `${how} before it got ready`, this.lines);
      }
      if (await this.probe()) {
        this.ready = true;
        return;
      }
      await sleep(100);
    }
    throw new ChildStartError(this.name, `did not answer ${this.url}/readyz with 200 within ${this.options.readyTimeoutMs} ms`, this.lines);
  }

  private async probe(): Promise<boolean> {
    try {
      const res = await fetch(`${this.url}/readyz`, { signal: AbortSignal.timeout(2500) });
      await res.arrayBuffer();
      return res.ok;
    } catch {
      return false;
    }
  }
}
