/**
 * Optional mirror of the current avatar into a Cognito user pool (`picture`), for games whose
 * clients read identity attributes. The player id is used as the Cognito username, so the token
 * claim named by JWT_PLAYER_CLAIM must carry the username (Cognito's `sub` is the username only
 * for pools without username aliases; otherwise point JWT_PLAYER_CLAIM at `cognito:username` and,
 * for access tokens, JWT_ACCESS_PLAYER_CLAIM at `username`).
 *
 * The mirror is best effort: it never holds back `ready` nor fails a delivery. `syncPicture`
 * retries it a few times within a small budget and reports the outcome; the caller counts it and
 * marks the profile when it failed (see `ProfileStore.markPictureSyncPending`).
 */
import { createRequire } from 'node:module';
import type { CognitoIdentityProviderClient } from '@aws-sdk/client-cognito-identity-provider';
import { clientOptions } from '@avatar-pipeline/kit/aws';

/**
 * The Cognito SDK, loaded only where a user pool is configured (it is a large module graph). A
 * CommonJS package without an `exports` map: `require` gets the module an `import` would.
 */
const cognitoSdk = (): typeof import('@aws-sdk/client-cognito-identity-provider') =>
  createRequire(import.meta.url)('@aws-sdk/client-cognito-identity-provider') as typeof import('@aws-sdk/client-cognito-identity-provider');

export interface PictureSync {
  /**
   * Resolves `user_not_found` when the pool has no such user; rejects on anything retryable.
   * `signal` aborts the call (and the SDK's own retries) when the caller's budget runs out.
   */
  setPicture(playerId: string, url: string, signal?: AbortSignal): Promise<'updated' | 'user_not_found'>;
  /**
   * Removes the attribute (an avatar removed, a player erased): unlike the mirror, not best effort,
   * the caller fails (and is retried) until it is gone. `user_not_found`: nothing to remove.
   */
  clearPicture(playerId: string, signal?: AbortSignal): Promise<'cleared' | 'user_not_found'>;
}

export function cognitoClient(region: string, endpoint?: string): CognitoIdentityProviderClient {
  const { CognitoIdentityProviderClient } = cognitoSdk();
  return new CognitoIdentityProviderClient(clientOptions(region, endpoint));
}

export function cognitoPictureSync(client: CognitoIdentityProviderClient, userPoolId: string): PictureSync {
  const { AdminDeleteUserAttributesCommand, AdminGetUserCommand, AdminUpdateUserAttributesCommand } = cognitoSdk();
  return {
    async setPicture(playerId, url, signal) {
      try {
        await client.send(
          new AdminUpdateUserAttributesCommand({ UserPoolId: userPoolId, Username: playerId, UserAttributes: [{ Name: 'picture', Value: url }] }),
          signal ? { abortSignal: signal } : {},
        );
        return 'updated';
      } catch (err) {
        // Retrying cannot create the user: holding back the ready event for it would only hurt.
        if ((err as { name?: string }).name === 'UserNotFoundException') return 'user_not_found';
        throw err;
      }
    },
    async clearPicture(playerId, signal) {
      const options = signal ? { abortSignal: signal } : {};
      try {
        // Only when set: Cognito answers a delete of an absent attribute with 200, its stand-in (moto) with an error.
        const { UserAttributes = [] } = await client.send(new AdminGetUserCommand({ UserPoolId: userPoolId, Username: playerId }), options);
        if (!UserAttributes.some((attribute) => attribute.Name === 'picture')) return 'cleared';
        await client.send(
          new AdminDeleteUserAttributesCommand({ UserPoolId: userPoolId, Username: playerId, UserAttributeNames: ['picture'] }),
          options,
        );
        return 'cleared';
      } catch (err) {
        if ((err as { name?: string }).name === 'UserNotFoundException') return 'user_not_found';
        throw err;
      }
    },
  };
}

/** How hard `syncPicture` tries before it gives up (each call is itself retried by the SDK, maxAttempts 3). */
export interface PictureRetryPolicy {
  /** Calls in all, the first included. */
  attempts: number;
  /** Full jitter: the wait before retry n (0 for the first) is random · min(maxDelayMs, baseDelayMs · 2ⁿ). */
  baseDelayMs: number;
  maxDelayMs: number;
  /**
   * Every call and wait together end within this: it stays well inside the `publishing` delivery
   * timeout (45 s per attempt, `deliveryPolicies` in the kit's topology), which also covers the
   * table writes and the S3 delete of the same attempt, and inside the dead-letter sink's 45 s.
   */
  budgetMs: number;
}

export const defaultPictureRetry: PictureRetryPolicy = { attempts: 3, baseDelayMs: 250, maxDelayMs: 2_000, budgetMs: 10_000 };

/** `ok`: the attribute is set; `user_not_found`: no such user (nothing to retry); `failed`: still failing when the attempts or the budget ran out. */
export const pictureSyncOutcomes = ['ok', 'user_not_found', 'failed'] as const;
export type PictureSyncOutcome = (typeof pictureSyncOutcomes)[number];

export interface PictureSyncResult {
  outcome: PictureSyncOutcome;
  /** Calls made. */
  attempts: number;
  /** The last error, when `failed`. */
  error?: unknown;
}

/** Sets the picture with bounded, jittered retries; never rejects. */
export async function syncPicture(
  sync: PictureSync,
  playerId: string,
  url: string,
  policy: PictureRetryPolicy = defaultPictureRetry,
  random: () => number = Math.random,
): Promise<PictureSyncResult> {
  const deadline = Date.now() + policy.budgetMs;
  let error: unknown;
  let attempts = 0;
  for (let n = 0; n < policy.attempts; n++) {
    if (n > 0) {
      const wait = Math.floor(random() * Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (n - 1)));
      if (Date.now() + wait >= deadline) break;
      await new Promise((resolve) => setTimeout(resolve, wait));
    }
    const remaining = deadline - Date.now();
    if (remaining <= 0) break;
    attempts += 1;
    try {
      const result = await sync.setPicture(playerId, url, AbortSignal.timeout(remaining));
      return { outcome: result === 'updated' ? 'ok' : 'user_not_found', attempts };
    } catch (err) {
      error = err;
    }
  }
  return { outcome: 'failed', attempts, error };
}
