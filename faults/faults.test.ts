/**
 * The fault-injection suite (docs/testing.md, "Fault injection"). A steady rate of uploads through the whole
 * local stack, every player's devices subscribed on web-push-testing, while one class of faults
 * strikes; then every upload must have ended (ready, rejected, failed or expired: none stuck) and
 * every device must have been told each outcome exactly once (none missing, none duplicated).
 *
 * `npm run test:faults` (FAULTS_FULL=1) runs every class with at least 100 uploads each;
 * `npm test` runs a short version: two classes, a few dozen uploads each.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../local/src/stack.js';
import { details, header, table } from './report.js';
import { runFaults, settleBudgetMs, defaultTiming, type RunResult } from './run.js';
import { outages, proxyFaults, restartStandIns, signalEachThenAll, slowStoreCrashes, throttledStore, type FaultClass } from './schedules.js';

const full = process.env['FAULTS_FULL'] === '1';
const artifactsDir = join(repoRoot, 'test-artifacts', 'faults');

interface Planned {
  fault: FaultClass;
  uploads: number;
  ratePerSecond: number;
  players: number;
}

const plan: Planned[] = full
  ? [
      { fault: signalEachThenAll('SIGKILL'), uploads: 120, ratePerSecond: 2, players: 24 },
      { fault: restartStandIns(3), uploads: 120, ratePerSecond: 2, players: 24 },
      { fault: proxyFaults(), uploads: 120, ratePerSecond: 2, players: 24 },
      { fault: signalEachThenAll('SIGTERM'), uploads: 120, ratePerSecond: 2, players: 24 },
      // Longer than the processing retries (25.5 s scaled): some uploads must end failed, and say so.
      { fault: outages(35_000), uploads: 120, ratePerSecond: 1.25, players: 24 },
    ]
  : [
      { fault: signalEachThenAll('SIGKILL', ['moderate', 'thumbnail', 'profile', 'push']), uploads: 30, ratePerSecond: 2.5, players: 8 },
      { fault: proxyFaults(), uploads: 30, ratePerSecond: 2.5, players: 8 },
    ];

/** Classes outside the plan, run only when named in FAULTS_CLASSES (probes of narrower windows). */
const extras: Planned[] = [
  { fault: slowStoreCrashes(), uploads: full ? 120 : 40, ratePerSecond: 2, players: full ? 24 : 8 },
  { fault: throttledStore(), uploads: full ? 120 : 40, ratePerSecond: 2, players: full ? 24 : 8 },
];

/** FAULTS_CLASSES=kill,proxy runs only those classes (e.g. while fixing one), in the plan or not. */
const only = process.env['FAULTS_CLASSES']?.split(',').map((name) => name.trim()).filter(Boolean);
const selected = only ? [...plan, ...extras].filter((p) => only.includes(p.fault.name)) : plan;

/** Start-up, the load, the settle budget (only spent when something is stuck) and the stop. */
const timeoutFor = (p: Planned) => 60_000 + (p.uploads / p.ratePerSecond) * 1000 + 120_000 + settleBudgetMs(defaultTiming);

describe.sequential(`fault injection (${full ? 'full' : 'short'})`, () => {
  const results: RunResult[] = [];

  afterAll(async () => {
    if (results.length === 0) return;
    const report = [header(results, full), table(results), '', details(results)].join('\n');
    console.log(`\n${report}`);
    await mkdir(artifactsDir, { recursive: true });
    await writeFile(join(artifactsDir, `report-${full ? 'full' : 'short'}.md`), `${report}\n`);
  });

  for (const p of selected) {
    it(
      `${p.fault.name}: ${p.fault.faults}`,
      async () => {
        const result = await runFaults({
          name: p.fault.name,
          faults: p.fault.faults,
          uploads: p.uploads,
          ratePerSecond: p.ratePerSecond,
          players: p.players,
          schedule: p.fault.schedule,
          artifactsDir,
        });
        results.push(result);
        console.log(`${p.fault.name}: ${JSON.stringify({ started: result.started, ready: result.ready, rejected: result.rejected, failed: result.failed, expired: result.expired, stuck: result.stuck, ...result.notifications })}`);
        expect(result.started, 'uploads started').toBeGreaterThanOrEqual(full ? 100 : Math.floor(p.uploads * 0.9));
        // Every fixture kind got through, so the run exercised both outcomes.
        expect(result.ready, 'uploads ready').toBeGreaterThan(0);
        expect(result.rejected, 'uploads rejected').toBeGreaterThan(0);
        expect({
          stuck: result.stuck,
          missing: result.notifications.missing,
          duplicates: result.notifications.duplicates,
          wrong: result.notifications.wrong,
        }).toEqual({ stuck: 0, missing: 0, duplicates: 0, wrong: 0 });
      },
      timeoutFor(p),
    );
  }
});
