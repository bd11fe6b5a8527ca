/**
 * VAPID keys in a Kubernetes Secret (keys `publicKey`, `privateKey`): for clusters without AWS,
 * such as kind. Created once and immutable; on a create race the API server answers 409 to the
 * loser, which reads the winner's Secret.
 */
import { CoreV1Api, KubeConfig, type V1Secret } from '@kubernetes/client-node';
import type { VapidKeys } from './keys.js';
import { completePair, type VapidKeyStore } from './store.js';

/** The two calls the store makes (CoreV1Api, or a stand-in in tests). */
export type SecretApi = Pick<CoreV1Api, 'readNamespacedSecret' | 'createNamespacedSecret'>;

export interface SecretStoreOptions {
  name: string;
  namespace: string;
}

/** A CoreV1Api from the usual places: KUBECONFIG, ~/.kube/config, else the in-cluster service account. */
export function defaultSecretApi(): SecretApi {
  const kc = new KubeConfig();
  kc.loadFromDefault();
  return kc.makeApiClient(CoreV1Api);
}

/** The HTTP status of a failed client-node call (ApiException.code). */
function status(err: unknown): number | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'number' ? code : undefined;
}

const decode = (data: Record<string, string> | undefined, key: string) => {
  const value = data?.[key];
  return value === undefined ? undefined : Buffer.from(value, 'base64').toString('utf8');
};

export class SecretVapidStore implements VapidKeyStore {
  constructor(
    private readonly api: SecretApi,
    private readonly options: SecretStoreOptions,
  ) {}

  describe(): string {
    return `Kubernetes Secret ${this.options.namespace}/${this.options.name}`;
  }

  async read(): Promise<VapidKeys | undefined> {
    let secret: V1Secret;
    try {
      secret = await this.api.readNamespacedSecret({ name: this.options.name, namespace: this.options.namespace });
    } catch (err) {
      if (status(err) === 404) return undefined;
      throw err;
    }
    return completePair(this.describe(), { publicKey: decode(secret.data, 'publicKey'), privateKey: decode(secret.data, 'privateKey') });
  }

  async createIfAbsent(keys: VapidKeys): Promise<{ created: boolean; keys: VapidKeys }> {
    const existing = await this.read();
    if (existing) return { created: false, keys: existing };
    try {
      await this.api.createNamespacedSecret({
        namespace: this.options.namespace,
        body: {
          apiVersion: 'v1',
          kind: 'Secret',
          metadata: {
            name: this.options.name,
            labels: { 'app.kubernetes.io/part-of': 'avatar-pipeline', 'app.kubernetes.io/component': 'vapid-keys' },
          },
          type: 'Opaque',
          // Nothing may edit the pair in place: a changed key breaks every subscription.
          immutable: true,
          data: {
            publicKey: Buffer.from(keys.publicKey).toString('base64'),
            privateKey: Buffer.from(keys.privateKey).toString('base64'),
          },
        },
      });
      return { created: true, keys };
    } catch (err) {
      if (status(err) !== 409) throw err;
    }
    const winner = await this.read();
    if (!winner) throw new Error(`${this.describe()} was reported to exist but cannot be read`);
    return { created: false, keys: winner };
  }
}
