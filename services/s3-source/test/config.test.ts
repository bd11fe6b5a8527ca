import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '@avatar-pipeline/kit';
import { s3SourceEnv, webhookMode } from '../src/index.js';

describe('s3-source configuration', () => {
  it('needs only K_SINK and fills in the rest', () => {
    expect(loadConfig(s3SourceEnv, { K_SINK: 'http://broker-ingress.knative-eventing.svc.cluster.local/avatars/default' })).toEqual({
      PORT: 8080,
      HOST: '0.0.0.0',
      LOG_LEVEL: 'info',
      SHUTDOWN_GRACE_SECONDS: 20,
      AWS_REGION: 'us-east-1',
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

describe('s3-source webhook authentication', () => {
  const mode = (env: Record<string, string>) => webhookMode(loadConfig(s3SourceEnv, { K_SINK: 'http://sink', ...env }));

  it('refuses to start without WEBHOOK_AUTH_TOKEN: an open webhook takes forged notifications', () => {
    expect(() => mode({})).toThrow(ConfigError);
    expect(() => mode({})).toThrow('invalid configuration: WEBHOOK_AUTH_TOKEN is required (or SQS_QUEUE_URL alone, or WEBHOOK_AUTH_DISABLED=true for a webhook without auth)');
  });

  it('guards the webhook with the token, or serves it open only when told to', () => {
    expect(mode({ WEBHOOK_AUTH_TOKEN: 'secret' })).toEqual({ token: 'secret' });
    expect(mode({ WEBHOOK_AUTH_DISABLED: 'true' })).toBe('open');
    expect(() => mode({ WEBHOOK_AUTH_DISABLED: 'true', WEBHOOK_AUTH_TOKEN: 'secret' })).toThrow('WEBHOOK_AUTH_DISABLED=true contradicts WEBHOOK_AUTH_TOKEN');
  });

  it('serves no webhook when it polls SQS and has no token (nothing posts to it on AWS)', () => {
    expect(mode({ SQS_QUEUE_URL: 'https://sqs.eu-west-1.amazonaws.com/123456789012/uploads' })).toBe('off');
  });
});
