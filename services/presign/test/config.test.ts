import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '@avatar-pipeline/kit/config';
import { presignEnv } from '../src/index.js';

describe('presign configuration', () => {
  it('has safe defaults', () => {
    expect(loadConfig(presignEnv, {})).toMatchObject({
      AVATAR_MAX_BYTES: 5_242_880,
      PRESIGN_EXPIRES_SECONDS: 300,
      RATE_LIMIT_UPLOADS: 10,
      RATE_LIMIT_WINDOW_SECONDS: 60,
    });
  });

  it('reads overrides', () => {
    const config = loadConfig(presignEnv, { AVATAR_MAX_BYTES: '1048576', PRESIGN_EXPIRES_SECONDS: '3600', S3_PUBLIC_URL: 'http://localhost:8080/s3' });
    expect(config).toMatchObject({ AVATAR_MAX_BYTES: 1_048_576, PRESIGN_EXPIRES_SECONDS: 3600, S3_PUBLIC_URL: 'http://localhost:8080/s3' });
  });

  it.each([
    [{ PRESIGN_EXPIRES_SECONDS: '3601' }, /PRESIGN_EXPIRES_SECONDS/],
    [{ PRESIGN_EXPIRES_SECONDS: '0' }, /PRESIGN_EXPIRES_SECONDS/],
    [{ RATE_LIMIT_UPLOADS: '0' }, /RATE_LIMIT_UPLOADS/],
    [{ AVATAR_MAX_BYTES: 'lots' }, /AVATAR_MAX_BYTES/],
    [{ S3_PUBLIC_URL: 'ftp://example.test' }, /S3_PUBLIC_URL/],
  ])('refuses %o', (env, message) => {
    expect(() => loadConfig(presignEnv, env)).toThrow(ConfigError);
    expect(() => loadConfig(presignEnv, env)).toThrow(message);
  });
});
