import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '@avatar-pipeline/kit/config';
import { inputMode, loadS3SourceConfig, s3SourceEnv } from '../src/index.js';

describe('s3-source configuration', () => {
  it('needs only K_SINK and fills in the rest', () => {
    expect(loadConfig(s3SourceEnv, { K_SINK: 'http://broker-ingress.knative-eventing.svc.cluster.local/avatars/default' })).toEqual({
      PORT: 8080,
      HOST: '0.0.0.0',
      LOG_LEVEL: 'info',
      SHUTDOWN_GRACE_SECONDS: 20,
      OTEL_SDK_DISABLED: false,
      AWS_REGION: 'us-east-1',
      TABLE_NAME: 'avatar-pipeline',
      K_SINK: 'http://broker-ingress.knative-eventing.svc.cluster.local/avatars/default',
      SQS_VISIBILITY_TIMEOUT_SECONDS: 60,
      WEBHOOK_AUTH_DISABLED: false,
    });
  });

  it('names each bad variable', () => {
    expect(() => loadConfig(s3SourceEnv, {})).toThrow('K_SINK is required');
    expect(() => loadConfig(s3SourceEnv, { K_SINK: 'http://sink', WEBHOOK_AUTH_TOKEN: 'two words' })).toThrow(/WEBHOOK_AUTH_TOKEN: must not contain whitespace/);
    expect(() => loadConfig(s3SourceEnv, { K_SINK: 'http://sink', SQS_QUEUE_URL: 'queue' })).toThrow(/SQS_QUEUE_URL/);
    expect(() => loadConfig(s3SourceEnv, { K_SINK: 'http://sink', SQS_VISIBILITY_TIMEOUT_SECONDS: '0' })).toThrow(/SQS_VISIBILITY_TIMEOUT_SECONDS/);
  });
});

describe('s3-source input selection and webhook authentication', () => {
  const QUEUE = 'https://sqs.eu-west-1.amazonaws.com/123456789012/uploads';
  const load = (env: Record<string, string>) => loadS3SourceConfig({ K_SINK: 'http://sink', ...env });
  const mode = (env: Record<string, string>) => load(env).mode;

  it('refuses to start without WEBHOOK_AUTH_TOKEN: an open webhook takes forged notifications', () => {
    expect(() => mode({})).toThrow(ConfigError);
    expect(() => mode({})).toThrow(
      'invalid configuration: WEBHOOK_AUTH_TOKEN is required (or SQS_QUEUE_URL to poll SQS instead, or WEBHOOK_AUTH_DISABLED=true for a webhook without auth)',
    );
    // Empty counts as unset, as everywhere (a chart rendering an empty Secret value).
    expect(() => mode({ WEBHOOK_AUTH_TOKEN: '' })).toThrow(/WEBHOOK_AUTH_TOKEN is required/);
    expect(() => mode({ WEBHOOK_AUTH_DISABLED: 'false' })).toThrow(/WEBHOOK_AUTH_TOKEN is required/);
  });

  it('guards the webhook with the token, or serves it open only when told to', () => {
    expect(mode({ WEBHOOK_AUTH_TOKEN: 'secret' })).toEqual({ input: 'webhook', token: 'secret' });
    expect(mode({ WEBHOOK_AUTH_DISABLED: 'true' })).toEqual({ input: 'webhook', token: undefined });
    expect(() => mode({ WEBHOOK_AUTH_DISABLED: 'true', WEBHOOK_AUTH_TOKEN: 'secret' })).toThrow('WEBHOOK_AUTH_DISABLED=true contradicts WEBHOOK_AUTH_TOKEN');
    expect(() => mode({ WEBHOOK_AUTH_DISABLED: 'maybe' })).toThrow('invalid configuration: WEBHOOK_AUTH_DISABLED: expected true or false');
  });

  it('polls SQS, with no webhook, when SQS_QUEUE_URL is set', () => {
    expect(mode({ SQS_QUEUE_URL: QUEUE })).toEqual({ input: 'sqs', queueUrl: QUEUE });
    expect(mode({ SQS_QUEUE_URL: QUEUE, WEBHOOK_AUTH_DISABLED: 'false' })).toEqual({ input: 'sqs', queueUrl: QUEUE });
    expect(load({ SQS_QUEUE_URL: QUEUE, SQS_VISIBILITY_TIMEOUT_SECONDS: '120' }).config.SQS_VISIBILITY_TIMEOUT_SECONDS).toBe(120);
  });

  it('refuses webhook settings next to SQS_QUEUE_URL: one input per process, named in one line', () => {
    expect(() => mode({ SQS_QUEUE_URL: QUEUE, WEBHOOK_AUTH_TOKEN: 'secret' })).toThrow(ConfigError);
    expect(() => mode({ SQS_QUEUE_URL: QUEUE, WEBHOOK_AUTH_TOKEN: 'secret' })).toThrow(
      'invalid configuration: WEBHOOK_AUTH_TOKEN is a webhook setting, but SQS_QUEUE_URL selects SQS polling (no webhook): set one of them',
    );
    expect(() => mode({ SQS_QUEUE_URL: QUEUE, WEBHOOK_AUTH_DISABLED: 'true' })).toThrow(
      'invalid configuration: WEBHOOK_AUTH_DISABLED is a webhook setting, but SQS_QUEUE_URL selects SQS polling (no webhook): set one of them',
    );
  });

  it('selects the same way from an already loaded configuration', () => {
    expect(inputMode({ WEBHOOK_AUTH_DISABLED: false, SQS_QUEUE_URL: QUEUE })).toEqual({ input: 'sqs', queueUrl: QUEUE });
    expect(() => inputMode({ WEBHOOK_AUTH_DISABLED: false })).toThrow(ConfigError);
  });
});
