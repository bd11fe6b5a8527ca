/**
 * Each service's configuration schema, as its config module exports it and its start.ts loads it,
 * so the tests load the configuration a pod gets exactly as the service would. Config modules are
 * imported directly: package entry points also load their runtime (moderate's loads TensorFlow),
 * which the tests do not need.
 */
import { loadConfig } from '@avatar-pipeline/kit/config';
import type { ServiceName } from '@avatar-pipeline/kit/topology';
import type { z } from 'zod';
import { moderateEnv } from '../../services/moderate/src/config.js';
import { presignEnv } from '../../services/presign/src/config.js';
import { profileEnv } from '../../services/profile/src/config.js';
import { pushEnv } from '../../services/push/src/config.js';
import { loadS3SourceConfig, s3SourceEnv } from '../../services/s3-source/src/config.js';
import { subscribeEnv } from '../../services/subscribe/src/config.js';
import { thumbnailEnv } from '../../services/thumbnail/src/config.js';

type Environment = Readonly<Record<string, string | undefined>>;

/** How a service loads its configuration from an environment, as its start.ts does. */
export interface ServiceConfig {
  shape: z.ZodRawShape;
  /** Throws a ConfigError where the service would stop at start-up. */
  load: (environment: Environment) => unknown;
}

const plain = (shape: z.ZodRawShape): ServiceConfig => ({ shape, load: (environment) => loadConfig(shape, environment) });

const configs: Readonly<Record<ServiceName, ServiceConfig>> = {
  presign: plain(presignEnv),
  // s3-source's loader also picks its one input, refusing contradictory settings.
  's3-source': { shape: s3SourceEnv, load: loadS3SourceConfig },
  moderate: plain(moderateEnv),
  thumbnail: plain(thumbnailEnv),
  profile: plain(profileEnv),
  subscribe: plain(subscribeEnv),
  push: plain(pushEnv),
};

export const serviceConfig = (service: ServiceName): ServiceConfig => configs[service];
