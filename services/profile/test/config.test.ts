import { describe, expect, it } from 'vitest';
import { dynamoDocumentClient } from '@avatar-pipeline/kit/aws';
import { ConfigError, loadConfig } from '@avatar-pipeline/kit/config';
import { createLogger } from '@avatar-pipeline/kit/logger';
import { authFromConfig } from '@avatar-pipeline/kit/player-auth';
import { memoryObjects } from '@avatar-pipeline/kit/testing';
import { createProfileService, profileEnv, profileStores } from '../src/index.js';

const base = {
  JWT_JWKS_URL: 'http://localhost:8080/dev/.well-known/jwks.json',
  JWT_ISSUER: 'http://localhost:8080/dev',
  JWT_AUDIENCE: 'avatar-pipeline',
  MEDIA_BASE_URL: 'https://cdn.example.com/media/',
  K_SINK: 'http://broker-ingress.knative-eventing.svc.cluster.local/avatars/default',
};

describe('profile configuration', () => {
  it('loads, dropping the trailing slash of MEDIA_BASE_URL', () => {
    const config = loadConfig(profileEnv, base);
    expect(config.MEDIA_BASE_URL).toBe('https://cdn.example.com/media');
    expect(config.COGNITO_USER_POOL_ID).toBeUndefined();
    expect(loadConfig(profileEnv, { ...base, COGNITO_USER_POOL_ID: 'eu-west-1_AbC123' }).COGNITO_USER_POOL_ID).toBe('eu-west-1_AbC123');
  });

  it('names what is missing or wrong', () => {
    expect(() => loadConfig(profileEnv, { ...base, K_SINK: '' })).toThrow(/K_SINK is required/);
    expect(() => loadConfig(profileEnv, { ...base, MEDIA_BASE_URL: 'cdn.example.com' })).toThrow(ConfigError);
    expect(() => loadConfig(profileEnv, { ...base, COGNITO_USER_POOL_ID: 'pool' })).toThrow(/COGNITO_USER_POOL_ID/);
  });

  it('reports not ready when DynamoDB is unreachable', async () => {
    const config = loadConfig(profileEnv, base);
    const doc = dynamoDocumentClient({ region: 'us-east-1', dynamodbEndpoint: 'http://127.0.0.1:9' });
    const service = createProfileService({
      config,
      stores: profileStores(doc, config.TABLE_NAME),
      objects: memoryObjects(config.BUCKET),
      auth: authFromConfig(config),
      logger: createLogger('profile', 'silent'),
    });
    const res = await service.app.request('/readyz');
    expect(res.status).toBe(503);
    expect(await res.json()).toEqual({ status: 'unavailable', checks: { dynamodb: 'failing' } });
    doc.destroy();
  });
});
