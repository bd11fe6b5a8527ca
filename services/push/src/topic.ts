/**
 * The Topic header (RFC 8030 §5.4): a newer message with the same topic replaces one the push
 * service still holds for an offline device, so a player who comes back online sees only the
 * latest outcome. One topic per player, at most 32 characters of the base64url alphabet.
 *
 * The player id is hashed with a key (derived from the VAPID private key, so every replica agrees
 * without another secret) rather than plainly: a plain hash of a guessable id would tell the push
 * service which player owns a device.
 */
import { createHmac, hkdfSync } from 'node:crypto';

export type TopicFor = (playerId: string) => string;

export function playerTopics(vapidPrivateKey: string): TopicFor {
  const key = Buffer.from(hkdfSync('sha256', Buffer.from(vapidPrivateKey, 'base64url'), '', 'avatar-pipeline push topic', 32));
  return (playerId) => createHmac('sha256', key).update(playerId).digest('base64url').slice(0, 32);
}
