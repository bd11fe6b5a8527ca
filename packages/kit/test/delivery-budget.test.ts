/**
 * The delivery budgets: deliveryBudget's arithmetic, the budgets the topology's policies must keep,
 * and the table of docs/events.md, which is rendered from deliveryBudget so the docs cannot drift
 * (`UPDATE_DOCS=1 npx vitest run packages/kit/test/delivery-budget.test.ts` rewrites it).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { deliveryBudget, deliveryPolicies, durationMs, retryDelayMs, triggers, type RetryPolicy } from '../src/topology.js';

const PAGE = new URL('../../../docs/events.md', import.meta.url);
const START = '<!-- delivery-budgets:start (generated from deliveryBudget: packages/kit/test/delivery-budget.test.ts) -->';
const END = '<!-- delivery-budgets:end -->';

const MINUTE = 60_000;

/** 500 ms -> "0.5 s", 90 s -> "90 s", 510 s -> "8 min 30 s", 1320 s -> "22 min", 2 h 5 min -> "2 h 5 min". */
function formatDuration(ms: number): string {
  const seconds = Math.round(ms / 100) / 10;
  if (seconds < 120) return `${seconds} s`;
  const whole = Math.round(seconds);
  const [h, m, s] = [Math.floor(whole / 3600), Math.floor((whole % 3600) / 60), whole % 60];
  return [h && `${h} h`, m && `${m} min`, s && `${s} s`].filter(Boolean).join(' ');
}

/** Where each policy is used: the triggers that carry it (by identity), or what it is for. */
function usedBy(name: string, policy: RetryPolicy): string {
  const names = triggers.filter((t) => t.delivery === policy).map((t) => `\`${t.name}\``);
  if (name === 'processing') names.push("the Broker's default");
  if (name === 'deadLetters') names.push("dead letters to profile's `/dead-letter`");
  return names.join(', ');
}

function policyTable(): string {
  const rows = Object.entries(deliveryPolicies).map(([name, policy]) => {
    const budget = deliveryBudget(policy);
    const waits = `${formatDuration(budget.delaysMs[0] ?? 0)} … ${formatDuration(budget.delaysMs.at(-1) ?? 0)}`;
    return `| \`${name}\` | ${usedBy(name, policy)} | 1 + ${policy.retry} | ${waits} | ${formatDuration(budget.timeoutMs)} | ${formatDuration(budget.backoffMs)} | ${formatDuration(budget.worstCaseMs)} |`;
  });
  return [
    '| Policy | Used by | Attempts (1 + `retry`) | Waits (`backoffDelay`·2ⁿ) | `timeout` per attempt | Retries span | Worst case |',
    '| --- | --- | --- | --- | --- | --- | --- |',
    ...rows,
  ].join('\n');
}

describe('deliveryBudget', () => {
  it("adds Knative's waits (delay * 2^n before retry n) and every attempt's timeout", () => {
    // The policy of every trigger before budgets were set in minutes: about 15 s of retries.
    const old: RetryPolicy = { retry: 5, backoffPolicy: 'exponential', backoffDelay: 'PT0.5S', timeout: 'PT60S' };
    expect(deliveryBudget(old)).toEqual({ attempts: 6, delaysMs: [500, 1000, 2000, 4000, 8000], backoffMs: 15_500, timeoutMs: 60_000, worstCaseMs: 375_500 });
    const linear: RetryPolicy = { retry: 3, backoffPolicy: 'linear', backoffDelay: 'PT10S', timeout: 'PT1S' };
    expect(deliveryBudget(linear)).toEqual({ attempts: 4, delaysMs: [0, 10_000, 20_000], backoffMs: 30_000, timeoutMs: 1000, worstCaseMs: 34_000 });
    expect(deliveryBudget({ ...old, retry: 0 })).toMatchObject({ attempts: 1, delaysMs: [], backoffMs: 0, worstCaseMs: 60_000 });
    expect([0, 1, 2].map((n) => retryDelayMs(old, n))).toEqual([500, 1000, 2000]);
  });

  it('refuses a policy with no budget', () => {
    const policy: RetryPolicy = { retry: 1, backoffPolicy: 'exponential', backoffDelay: 'PT1S', timeout: 'PT1S' };
    expect(() => deliveryBudget({ ...policy, retry: -1 })).toThrow(RangeError);
    expect(() => deliveryBudget({ ...policy, retry: 1.5 })).toThrow(RangeError);
    expect(() => deliveryBudget({ ...policy, timeout: 'PT0S' })).toThrow(RangeError);
    expect(() => deliveryBudget({ ...policy, timeout: '60s' })).toThrow(/ISO 8601/);
  });

  it('formats durations for the docs', () => {
    expect([500, 2000, 90_000, 119_000, 120_000, 510_000, 1_320_000, 7_500_000].map(formatDuration)).toEqual([
      '0.5 s',
      '2 s',
      '90 s',
      '119 s',
      '2 min',
      '8 min 30 s',
      '22 min',
      '2 h 5 min',
    ]);
  });
});

describe('delivery budgets of the topology', () => {
  const budget = (policy: RetryPolicy) => deliveryBudget(policy);

  it('retries every stage for minutes, starting within seconds', () => {
    for (const [name, policy] of Object.entries(deliveryPolicies)) {
      expect(policy.backoffPolicy, name).toBe('exponential');
      expect(durationMs(policy.backoffDelay), name).toBeGreaterThanOrEqual(1000);
      expect(durationMs(policy.backoffDelay), name).toBeLessThanOrEqual(2000);
      expect(budget(policy).backoffMs, name).toBeGreaterThanOrEqual(8 * MINUTE);
      expect(budget(policy).worstCaseMs, name).toBeLessThanOrEqual(45 * MINUTE);
    }
    // A lost dead letter leaves its upload unsettled: it is retried longest.
    for (const policy of Object.values(deliveryPolicies)) expect(budget(deliveryPolicies.deadLetters).backoffMs).toBeGreaterThanOrEqual(budget(policy).backoffMs);
  });

  it('gives an attempt time for a cold start, within the Knative timeoutSeconds of the service it goes to', () => {
    // Knative Service timeoutSeconds (cdk8s/src/services.ts; k8s-tests check the rendered charts).
    const timeoutSeconds: Record<string, number> = { moderate: 120, thumbnail: 120, profile: 60, push: 60 };
    for (const trigger of triggers) {
      const timeout = durationMs(trigger.delivery.timeout) / 1000;
      expect(timeout, trigger.name).toBeLessThan(timeoutSeconds[trigger.subscriber.service] ?? 0);
      // Image stages may meet a scaled-to-zero pod that loads a model: well over a minute.
      expect(timeout, trigger.name).toBeGreaterThanOrEqual(['moderate', 'thumbnail'].includes(trigger.subscriber.service) ? 90 : 45);
    }
    expect(durationMs(deliveryPolicies.deadLetters.timeout) / 1000).toBeLessThan(timeoutSeconds[deliveryPolicies.processing.deadLetter.service]!);
  });

  it('is what docs/events.md says', () => {
    const table = policyTable();
    const text = readFileSync(PAGE, 'utf8');
    const start = text.indexOf(START);
    const end = text.indexOf(END);
    if (process.env['UPDATE_DOCS'] === '1' && start >= 0 && end > start) {
      writeFileSync(PAGE, `${text.slice(0, start + START.length)}\n\n${table}\n\n${text.slice(end)}`);
      return;
    }
    expect(start, `docs/events.md needs the markers ${START} and ${END}`).toBeGreaterThanOrEqual(0);
    expect(end).toBeGreaterThan(start);
    // On a mismatch: UPDATE_DOCS=1 npx vitest run packages/kit/test/delivery-budget.test.ts
    expect(text.slice(start + START.length, end).trim()).toBe(table);
  });
});
