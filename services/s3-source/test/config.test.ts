import { describe, expect, it } from 'vitest';
import { loadConfig } from '@avatar-pipeline/kit';
import { s3SourceEnv } from '../src/index.js';

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
    });
  });

  it('names each bad variable', () => {
    expect(() => loadConfig(s3SourceEnv, {})).toThrow('K_SINK is required');
    expect(() => loadConfig(s3SourceEnv, { K_SINK: 'http://sink', WEBHOOK_AUTH_TOKEN: 'two words' })).toThrow(/WEBHOOK_AUTH_TOKEN: must not contain whitespace/);
    expect(() => loadConfig(s3SourceEnv, { K_SINK: 'http://sink', SQS_QUEUE_URL: 'queue' })).toThrow(/SQS_QUEUE_URL/);
    expect(() => loadConfig(s3SourceEnv, { K_SINK: 'http://sink', SQS_VISIBILITY_TIMEOUT_SECONDS: '0' })).toThrow(/SQS_VISIBILITY_TIMEOUT_SECONDS/);
  });
});
