/**
 * Choosing and building the VAPID key store from the environment. A backend's client library
 * loads only when that backend is used: @kubernetes/client-node alone adds about a second and
 * 100 MB to a start-up that should stay fast (Knative scales these services from zero).
 */
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { SSMClient } from '@aws-sdk/client-ssm';
import { z } from 'zod';
import { clientOptions } from '@avatar-pipeline/kit/aws';
import { awsEnv, env } from '@avatar-pipeline/kit/config';
import { FileVapidStore } from './file-store.js';
import type { SecretApi } from './secret-store.js';
import type { VapidKeyStore } from './store.js';

/** Kubernetes object names: DNS-1123 subdomains. */
const dns1123 = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

export const vapidEnv = {
  VAPID_STORE: z.enum(['file', 'ssm', 'k8s-secret']).default('file').describe('Where the key pair lives: `file` (local default), `ssm` (Parameter Store) or `k8s-secret`.'),
  VAPID_FILE: z.string().optional().describe('file: the JSON file, mode 0600 (default `${LOCAL_DATA_DIR}/vapid.json`).'),
  LOCAL_DATA_DIR: z.string().default('.data').describe('file: the directory of the default VAPID_FILE.'),
  VAPID_SSM_PREFIX: z
    .string()
    .regex(/^(\/[A-Za-z0-9_.-]+)+$/, 'expected a parameter path such as /avatar-pipeline/vapid (no trailing slash)')
    .default('/avatar-pipeline/vapid')
    .describe('ssm: the parameters\' path prefix: `<prefix>/private-key` (SecureString) and `<prefix>/public-key` (String).'),
  VAPID_SSM_KMS_KEY_ID: z.string().optional().describe('ssm: the KMS key of the private key\'s SecureString (default: the account\'s aws/ssm key).'),
  VAPID_SECRET_NAME: z
    .string()
    .max(253)
    .regex(dns1123, 'expected a Kubernetes object name')
    .default('avatar-pipeline-vapid')
    .describe('k8s-secret: the Secret\'s name.'),
  VAPID_SECRET_NAMESPACE: z
    .string()
    .max(63)
    .regex(dns1123, 'expected a Kubernetes namespace')
    .optional()
    .describe('k8s-secret: the Secret\'s namespace (default: the pod\'s own).'),
  AWS_REGION: awsEnv.AWS_REGION,
  AWS_ENDPOINT_URL_SSM: env.url().optional().describe('ssm: SSM endpoint override, for a stand-in.'),
};

export type VapidConfig = z.output<z.ZodObject<typeof vapidEnv>>;

export interface VapidStoreDeps {
  ssm?: SSMClient;
  secretApi?: SecretApi;
  /** Where the pod's namespace is read from when none is configured. */
  namespaceFile?: string;
}

const SERVICE_ACCOUNT_NAMESPACE = '/var/run/secrets/kubernetes.io/serviceaccount/namespace';

/** The pod's own namespace (from its service account mount), if it runs in a cluster. */
export function podNamespace(file = SERVICE_ACCOUNT_NAMESPACE): string | undefined {
  try {
    return readFileSync(file, 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

/** A store whose backend module (and client library) is imported on first use. */
function lazyStore(description: string, load: () => Promise<VapidKeyStore>): VapidKeyStore {
  let store: Promise<VapidKeyStore> | undefined;
  const backend = () => (store ??= load());
  return {
    describe: () => description,
    read: async () => (await backend()).read(),
    createIfAbsent: async (keys) => (await backend()).createIfAbsent(keys),
  };
}

export function createVapidStore(config: VapidConfig, deps: VapidStoreDeps = {}): VapidKeyStore {
  switch (config.VAPID_STORE) {
    case 'file':
      return new FileVapidStore(resolve(config.VAPID_FILE ?? join(config.LOCAL_DATA_DIR, 'vapid.json')));
    case 'ssm': {
      const options = { prefix: config.VAPID_SSM_PREFIX, kmsKeyId: config.VAPID_SSM_KMS_KEY_ID };
      return lazyStore(`SSM parameters ${options.prefix}/{public-key,private-key}`, async () => {
        const [{ SsmVapidStore }, { SSMClient }] = await Promise.all([import('./ssm-store.js'), import('@aws-sdk/client-ssm')]);
        return new SsmVapidStore(deps.ssm ?? new SSMClient(clientOptions(config.AWS_REGION, config.AWS_ENDPOINT_URL_SSM)), options);
      });
    }
    case 'k8s-secret': {
      const namespace = config.VAPID_SECRET_NAMESPACE ?? podNamespace(deps.namespaceFile);
      if (!namespace) throw new Error('VAPID_SECRET_NAMESPACE is required outside a Kubernetes pod');
      const options = { name: config.VAPID_SECRET_NAME, namespace };
      return lazyStore(`Kubernetes Secret ${namespace}/${options.name}`, async () => {
        const { SecretVapidStore, defaultSecretApi } = await import('./secret-store.js');
        return new SecretVapidStore(deps.secretApi ?? defaultSecretApi(), options);
      });
    }
  }
}
