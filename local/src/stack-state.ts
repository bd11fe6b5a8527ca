/**
 * Where a running stack listens, in `<data dir>/stack.json`, so that separate commands
 * (`npm run events`) find it. Written once the stack is up, removed when it stops; a file left by a
 * stack that was killed names a process that no longer exists and is ignored.
 */
import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';

const stackStateSchema = z.object({
  pid: z.number().int().positive(),
  gatewayUrl: z.url(),
  brokerUrl: z.url(),
  startedAt: z.string(),
});

export type StackState = z.output<typeof stackStateSchema>;

export const stateFile = (dataDir: string) => join(dataDir, 'stack.json');

/** Writes the state (whole or not at all: readers never see half a file); returns its remover. */
export async function writeStackState(dataDir: string, state: StackState): Promise<() => Promise<void>> {
  const file = stateFile(dataDir);
  const partial = `${file}.${state.pid}.tmp`;
  await writeFile(partial, `${JSON.stringify(state, null, 2)}\n`);
  await rename(partial, file);
  return () => rm(file, { force: true });
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists, it is just not ours to signal.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The running stack's state, or undefined when there is none (no file, an unreadable one, or its process is gone). */
export async function readStackState(dataDir: string): Promise<StackState | undefined> {
  let text: string;
  try {
    text = await readFile(stateFile(dataDir), 'utf8');
  } catch {
    return undefined;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return undefined;
  }
  const state = stackStateSchema.safeParse(parsed);
  return state.success && isRunning(state.data.pid) ? state.data : undefined;
}
