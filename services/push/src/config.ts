/** The push service's environment. */
import { isIP } from 'node:net';
import { z } from 'zod';
import { awsEnv, commonEnv, env, eventAuthEnv, tableEnv } from '@avatar-pipeline/kit/config';
import { tracingEnv } from '@avatar-pipeline/kit/tracing';
import { pushEndpointEnv } from '@avatar-pipeline/webpush';
import { vapidEnv } from '@avatar-pipeline/webpush';

/** 127.0.0.0/8, ::1, localhost and *.localhost. */
function isLocalHost(host: string): boolean {
  const bare = host.replace(/^\[|\]$/g, '').toLowerCase().replace(/\.$/, '');
  if (bare === 'localhost' || bare.endsWith('.localhost')) return true;
  if (isIP(bare) === 4) return bare.startsWith('127.');
  return bare === '::1';
}

/**
 * The VAPID `sub` claim: how a push service reaches the operator. RFC 8292 asks for a `mailto:`
 * or `https:` URI, and Apple refuses a localhost one (BadJwtToken) on every message.
 */
export const vapidSubjectSchema = z.string().superRefine((value, ctx) => {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    ctx.addIssue({ code: 'custom', message: 'expected a mailto: address or an https: URL' });
    return;
  }
  if (url.protocol === 'https:') {
    if (isLocalHost(url.hostname)) ctx.addIssue({ code: 'custom', message: 'must not be a localhost URL (push services reject it)' });
  } else if (url.protocol === 'mailto:') {
    const domain = /^[^@\s]+@([^@\s?]+)$/.exec(decodeURIComponent(url.pathname))?.[1];
    if (!domain) ctx.addIssue({ code: 'custom', message: 'expected a mailto: address such as mailto:ops@example.com' });
    else if (isLocalHost(domain)) ctx.addIssue({ code: 'custom', message: 'must not be a localhost address (push services reject it)' });
  } else {
    ctx.addIssue({ code: 'custom', message: 'expected a mailto: address or an https: URL' });
  }
});

export const pushEnv = {
  ...commonEnv,
  ...tracingEnv,
  ...awsEnv,
  ...tableEnv,
  ...vapidEnv,
  ...pushEndpointEnv,
  ...eventAuthEnv,
  VAPID_SUBJECT: vapidSubjectSchema.describe('The contact in every VAPID token: a `mailto:` address or an `https:` URL, not localhost.'),
  PUSH_TTL_SECONDS: env.int(86_400, 0, 28 * 86_400).describe('`TTL`: how long a push service keeps a message for an offline device (0 to 28 days).'),
  PUSH_HOST_CONCURRENCY: env.int(16, 1, 1000).describe('Requests in flight at once per push service origin.'),
  PUSH_MAX_ATTEMPTS: env.int(3, 1, 10).describe('Attempts per message on 429, 5xx or no answer, the first included.'),
  /**
   * Keep it below the push triggers' delivery timeout (`deliveryPolicies.notification`, 45 s), so
   * the broker never gives up on a request still at work.
   */
  PUSH_TIMEOUT_MS: env.int(20_000, 1000, 120_000).describe('Time budget of one event: every device, retry and wait.'),
};

export type PushConfig = z.output<z.ZodObject<typeof pushEnv>>;
