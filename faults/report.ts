/** The fault suite's table and details, as Markdown (printed and written under test-artifacts/faults/). */
import type { RunResult } from './run.js';

const s = (ms: number) => `${(ms / 1000).toFixed(0)} s`;

export function table(results: readonly RunResult[]): string {
  const head = [
    'fault class',
    'uploads started',
    'ready',
    'rejected',
    'failed',
    'expired',
    'stuck (must be 0)',
    'notifications expected',
    'received',
    'missing (must be 0)',
    'duplicates (must be 0)',
    'time (load + settle)',
  ];
  const rows = results.map((r) => [
    r.name,
    r.started,
    r.ready,
    r.rejected,
    r.failed,
    r.expired,
    r.stuck,
    r.notifications.expected,
    r.notifications.received,
    r.notifications.missing,
    r.notifications.duplicates,
    `${s(r.totalMs)} (${s(r.loadMs)} + ${s(r.settleMs)})`,
  ]);
  return [head, head.map(() => '---'), ...rows].map((cells) => `| ${cells.join(' | ')} |`).join('\n');
}

export function details(results: readonly RunResult[]): string {
  const lines: string[] = [];
  for (const r of results) {
    lines.push(`### ${r.name}: ${r.faults}`);
    lines.push('');
    const extra = [
      r.notStarted ? `${r.notStarted} never got a ticket (${r.problems.join('; ')})` : undefined,
      r.unexpected ? `${r.unexpected} ended ready/rejected against their fixture` : undefined,
      r.notifications.wrong ? `${r.notifications.wrong} notifications contradict the upload's final state` : undefined,
      r.notifications.other ? `${r.notifications.other} notifications for uploads the run did not start` : undefined,
      Object.keys(r.failedReasons).length ? `failed/expired reasons: ${JSON.stringify(r.failedReasons)}` : undefined,
      Object.keys(r.broker).length ? `broker: ${JSON.stringify(r.broker)}` : undefined,
      r.missingNotifications.length
        ? `missing: ${r.missingNotifications.slice(0, 10).map((n) => `${n.status} of ${n.uploadId} on device ${n.device.slice(0, 8)}`).join(', ')}`
        : undefined,
      r.duplicateNotifications.length
        ? `duplicated: ${r.duplicateNotifications.slice(0, 10).map((n) => `${n.status} of ${n.uploadId} ×${n.times} on device ${n.device.slice(0, 8)}`).join(', ')}`
        : undefined,
      r.stuckUploads.length ? `stuck: ${r.stuckUploads.slice(0, 10).map((u) => `${u.uploadId} (${u.status ?? 'no answer'})`).join(', ')}` : undefined,
    ].filter((x): x is string => x !== undefined);
    for (const line of extra) lines.push(`- ${line}`);
    const proxies = Object.entries(r.proxies)
      .map(([name, st]) => `${name}: ${st.requests} requests, ${st.delayed} delayed, ${st.injected503} × 503, ${st.resetBefore}+${st.resetAfter} resets (before+after the store), ${st.upstreamErrors} upstream errors`)
      .join('; ');
    lines.push(`- fault proxies: ${proxies}`);
    lines.push(`- settle: ${s(r.settleMs)} of a ${s(r.settleBudgetMs)} budget`);
    lines.push('- timeline:');
    for (const e of r.events) lines.push(`  - ${e}`);
    lines.push('');
  }
  return lines.join('\n');
}

export function header(results: readonly RunResult[], full: boolean): string {
  const t = results[0]?.timing;
  const scaled = t
    ? `Broker retries scaled × ${t.backoffScale} (\`backoffScale\`): processing retries span ${(510 * t.backoffScale).toFixed(1)} s instead of 8 min 30 s, notifications ${(1022 * t.backoffScale).toFixed(1)} s instead of 17 min, dead letters ${(2046 * t.backoffScale).toFixed(1)} s instead of 34 min; PUSH_TIMEOUT_MS=${t.pushTimeoutMs} (claim lease ${(t.pushTimeoutMs + 10_000) / 1000} s), PRESIGN_EXPIRES_SECONDS=${t.presignExpiresSeconds}, RECONCILE_PERIOD_SECONDS=${t.reconcilePeriodSeconds}, UPLOAD_PENDING_TIMEOUT_SECONDS=${t.pendingTimeoutSeconds}, UPLOAD_PROCESSING_TIMEOUT_SECONDS=${t.processingTimeoutSeconds}.`
    : '';
  return [
    `## Fault injection (${full ? 'full: npm run test:faults' : 'short: part of npm test'})`,
    '',
    scaled,
    '"stuck" = an upload not ready, rejected, failed or expired at the end of the settle time; notifications are counted per device and upload.',
    '',
  ].join('\n');
}
