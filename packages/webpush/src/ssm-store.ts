/**
 * VAPID keys in SSM Parameter Store: `<prefix>/private-key` (SecureString, optionally under a
 * customer KMS key) and `<prefix>/public-key` (String, so it can be read without decrypt rights).
 * Writes never overwrite: the private key goes first, and whichever init loses a race reads the
 * winner's key and derives the public key from it, so concurrent inits converge on one pair.
 */
import { GetParameterCommand, PutParameterCommand, type SSMClient } from '@aws-sdk/client-ssm';
import { derivePublicKey, VapidKeyError, type VapidKeys } from './keys.js';
import { completePair, type VapidKeyStore } from './store.js';

export interface SsmStoreOptions {
  /** Parameter path prefix without a trailing slash, e.g. /avatar-pipeline/vapid. */
  prefix: string;
  /** KMS key (id, alias or ARN) for the SecureString; default: the account's aws/ssm key. */
  kmsKeyId?: string | undefined;
}

const errorName = (err: unknown) => (err as { name?: string } | null)?.name;

export class SsmVapidStore implements VapidKeyStore {
  private readonly publicName: string;
  private readonly privateName: string;

  constructor(
    private readonly ssm: SSMClient,
    private readonly options: SsmStoreOptions,
  ) {
    this.publicName = `${options.prefix}/public-key`;
    this.privateName = `${options.prefix}/private-key`;
  }

  describe(): string {
    return `SSM parameters ${this.options.prefix}/{public-key,private-key}`;
  }

  private async get(name: string): Promise<string | undefined> {
    try {
      const { Parameter } = await this.ssm.send(new GetParameterCommand({ Name: name, WithDecryption: true }));
      return Parameter?.Value;
    } catch (err) {
      if (errorName(err) === 'ParameterNotFound') return undefined;
      throw err;
    }
  }

  /** Writes a parameter unless it exists; returns whether it was written. */
  private async put(name: string, value: string, secure: boolean): Promise<boolean> {
    try {
      await this.ssm.send(
        new PutParameterCommand({
          Name: name,
          Value: value,
          Type: secure ? 'SecureString' : 'String',
          ...(secure && this.options.kmsKeyId ? { KeyId: this.options.kmsKeyId } : {}),
          Overwrite: false,
          Description: `Web Push VAPID ${secure ? 'private' : 'public'} key (avatar-pipeline)`,
        }),
      );
      return true;
    } catch (err) {
      if (errorName(err) === 'ParameterAlreadyExists') return false;
      throw err;
    }
  }

  private async parts() {
    const [publicKey, privateKey] = await Promise.all([this.get(this.publicName), this.get(this.privateName)]);
    return { publicKey, privateKey };
  }

  async read(): Promise<VapidKeys | undefined> {
    return completePair(this.describe(), await this.parts());
  }

  async createIfAbsent(keys: VapidKeys): Promise<{ created: boolean; keys: VapidKeys }> {
    const found = await this.parts();
    completePair(this.describe(), found);
    let privateKey = found.privateKey;
    let created = false;
    if (privateKey === undefined) {
      created = await this.put(this.privateName, keys.privateKey, true);
      privateKey = created ? keys.privateKey : await this.get(this.privateName);
      if (privateKey === undefined) throw new VapidKeyError(`${this.privateName} exists but cannot be read`);
    }
    const publicKey = derivePublicKey(privateKey);
    if (found.publicKey === undefined && !(await this.put(this.publicName, publicKey, false))) {
      const stored = await this.get(this.publicName);
      if (stored !== publicKey) throw new VapidKeyError(`${this.publicName} does not belong to ${this.privateName}`);
    }
    return { created, keys: { publicKey: found.publicKey ?? publicKey, privateKey } };
  }
}
