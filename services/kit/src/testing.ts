/**
 * Test support shared by the services' suites (imported as `@avatar-pipeline/kit/testing`; never
 * loaded by a service at run time).
 */
import type { Hono } from 'hono';
import type { Registry } from 'prom-client';
import { toBinary, toCloudEvent, type OutgoingEvent } from './cloudevents.js';
import type { AppEnv } from './service.js';

export interface Delivery {
  status: number;
  body: string;
  /** The reply event, when the service answered 200 with one. */
  reply: ReturnType<typeof toCloudEvent> | undefined;
  /** The JSON error, when the service answered 4xx/5xx. */
  error: { code: string; message: string } | undefined;
}

/** Delivers an event to an app in binary mode, as the broker does, and parses the answer. */
export async function deliverEvent(app: Hono<AppEnv>, event: OutgoingEvent, path = '/events'): Promise<Delivery> {
  const { headers, body } = toBinary(event);
  const res = await app.request(path, { method: 'POST', headers, body });
  const text = await res.text();
  const replyHeaders: Record<string, string> = {};
  res.headers.forEach((value, name) => (replyHeaders[name] = value));
  return {
    status: res.status,
    body: text,
    reply: res.status === 200 ? toCloudEvent(replyHeaders, text) : undefined,
    error: res.status >= 400 ? (JSON.parse(text) as { error: { code: string; message: string } }).error : undefined,
  };
}

/** Sum of a metric's series (`series` picks e.g. a histogram's `_count`) whose labels include `labels`. */
export async function metricValue(registry: Registry, metric: string, labels: Record<string, string> = {}, series = metric): Promise<number> {
  const found = registry.getSingleMetric(metric);
  if (!found) return 0;
  const { values } = await found.get();
  return values
    .filter((v) => ((v as { metricName?: string }).metricName ?? metric) === series && Object.entries(labels).every(([k, l]) => String(v.labels[k]) === l))
    .reduce((sum, v) => sum + v.value, 0);
}
