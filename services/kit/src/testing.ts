/**
 * Test support shared by the services' suites (imported as `@avatar-pipeline/kit/testing`; never
 * loaded by a service at run time).
 */
import type { Hono } from 'hono';
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
