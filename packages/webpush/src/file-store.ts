/**
 * VAPID keys in a local JSON file (mode 0600): the local stack's default. The file appears
 * complete or not at all: the pair is written to a private temporary file, then hard-linked to
 * its name, which fails if the name exists, so concurrent inits converge on the first pair and a
 * reader never sees half a file.
 */
import { randomUUID } from 'node:crypto';
import { link, mkdir, readFile, unlink, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { z } from 'zod';
import { VapidKeyError, type VapidKeys } from './keys.js';
import { completePair, type VapidKeyStore } from './store.js';

const fileSchema = z.object({ publicKey: z.string().optional(), privateKey: z.string().optional() });

const errorCode = (err: unknown) => (err as { code?: string } | null)?.code;

export class FileVapidStore implements VapidKeyStore {
  constructor(private readonly path: string) {}

  describe(): string {
    return `file ${this.path}`;
  }

  async read(): Promise<VapidKeys | undefined> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (err) {
      if (errorCode(err) === 'ENOENT') return undefined;
      throw err;
    }
    let parsed;
    try {
      parsed = fileSchema.parse(JSON.parse(text));
    } catch {
      throw new VapidKeyError(`${this.describe()} is not a VAPID key file ({"publicKey","privateKey"})`);
    }
    return completePair(this.describe(), parsed);
  }

  async createIfAbsent(keys: VapidKeys): Promise<{ created: boolean; keys: VapidKeys }> {
    await mkdir(dirname(this.path), { recursive: true, mode: 0o700 });
    const temporary = `${this.path}.${randomUUID()}.tmp`;
    await writeFile(temporary, `${JSON.stringify({ publicKey: keys.publicKey, privateKey: keys.privateKey }, null, 2)}\n`, { flag: 'wx', mode: 0o600 });
    let created = true;
    try {
      await link(temporary, this.path);
    } catch (err) {
      if (errorCode(err) !== 'EEXIST') throw err;
      created = false;
    } finally {
      await unlink(temporary);
    }
    if (created) return { created, keys };
    const existing = await this.read();
    if (!existing) throw new VapidKeyError(`${this.describe()} exists but holds no key pair`);
    return { created, keys: existing };
  }
}
