/** The count itself: what the suite calls stuck, missing, duplicate and wrong. */
import { describe, expect, it } from 'vitest';
import { tally, type Upload } from './run.js';

const upload = (n: number, playerId: string, status: string | undefined, expect: 'ready' | 'rejected' = 'ready'): Upload => ({
  index: n,
  playerId,
  fixture: 'f',
  expect,
  uploadId: `u${n}`,
  posted: true,
  presignAttempts: 1,
  postAttempts: 1,
  ...(status ? { status } : {}),
});
const note = (uploadId: string, status: string) => JSON.stringify({ type: `avatar.${status}`, uploadId, status });

describe('tally', () => {
  it('counts terminal states, stuck uploads, and per device the missing, duplicate and wrong notifications', async () => {
    const uploads: Upload[] = [
      upload(1, 'a', 'ready'),
      upload(2, 'a', 'rejected', 'rejected'),
      upload(3, 'a', 'failed'),
      upload(4, 'b', 'ready'),
      upload(5, 'b', 'processing'),
      upload(6, 'b', undefined),
      upload(7, 'b', 'expired'),
      { ...upload(8, 'b', undefined), uploadId: undefined as never, posted: false },
    ];
    delete uploads[7]!.uploadId;
    const inbox: Record<string, string[]> = {
      // Player a, two devices: the phone got everything, u1 twice; the laptop missed u3.
      phone: [note('u1', 'ready'), note('u2', 'rejected'), note('u3', 'failed'), note('u1', 'ready')],
      laptop: [note('u1', 'ready'), note('u2', 'rejected')],
      // Player b: u4 announced as failed though it is ready; the expired upload's notice; a stranger's.
      tablet: [note('u4', 'failed'), note('u7', 'expired'), note('u99', 'ready')],
    };
    const result = await tally({
      name: 't',
      faults: 'none',
      uploads,
      players: [
        { id: 'a', devices: ['phone', 'laptop'] },
        { id: 'b', devices: ['tablet'] },
      ],
      push: { notifications: async (device) => inbox[device] ?? [] },
    });
    expect(result).toMatchObject({ started: 7, notStarted: 1, ready: 2, rejected: 1, failed: 1, expired: 1, stuck: 2, unexpected: 0 });
    expect(result.stuckUploads.map((u) => u.uploadId)).toEqual(['u5', 'u6']);
    expect(result.notifications).toEqual({ expected: 8, received: 6, missing: 2, duplicates: 1, wrong: 1, other: 1 });
    expect(result.duplicateNotifications).toEqual([{ uploadId: 'u1', device: 'phone', status: 'ready', times: 2 }]);
    expect(result.missingNotifications).toEqual([
      { uploadId: 'u3', device: 'laptop', status: 'failed' },
      { uploadId: 'u4', device: 'tablet', status: 'ready' },
    ]);
  });
});
