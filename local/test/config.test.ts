import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '@avatar-pipeline/kit/config';
import { portVariable, stackEnv, stackOptions } from '../src/config.js';

const options = (env: Record<string, string>) => stackOptions(loadConfig(stackEnv, env), '/repo');

describe('stack configuration', () => {
  it('defaults to the gateway on 8080, free ports elsewhere and .data in the repository', () => {
    expect(options({})).toMatchObject({ dataDir: '/repo/.data', gatewayPort: 8080, s3Port: 0, brokerPort: 0, servicePorts: {}, logLevel: 'info' });
  });

  it('takes fixed ports per service and a data directory relative to the working directory', () => {
    expect(portVariable('s3-source')).toBe('S3_SOURCE_PORT');
    const o = options({ S3_SOURCE_PORT: '9001', PROFILE_PORT: '9002', GATEWAY_PORT: '0', LOCAL_DATA_DIR: 'tmp/data', AVATAR_MAX_BYTES: '1000' });
    expect(o.servicePorts).toEqual({ 's3-source': 9001, profile: 9002 });
    expect(o).toMatchObject({ gatewayPort: 0, dataDir: resolve('tmp/data'), maxUploadBytes: 1000 });
  });

  it('names a bad variable', () => {
    expect(() => options({ GATEWAY_PORT: 'eighty' })).toThrow(ConfigError);
    expect(() => options({ MODERATE_PORT: '70000' })).toThrow(/MODERATE_PORT/);
  });
});
