/**
 * Optional mirror of the current avatar into a Cognito user pool (`picture`), for games whose
 * clients read identity attributes. The player id is used as the Cognito username, so the token
 * claim named by JWT_PLAYER_CLAIM must carry the username (Cognito's `sub` is the username only
 * for pools without username aliases; otherwise point JWT_PLAYER_CLAIM at `cognito:username`).
 */
import { AdminUpdateUserAttributesCommand, CognitoIdentityProviderClient } from '@aws-sdk/client-cognito-identity-provider';
import { clientOptions } from '@avatar-pipeline/kit';

export interface PictureSync {
  /** Resolves `user_not_found` when the pool has no such user; rejects on anything retryable. */
  setPicture(playerId: string, url: string): Promise<'updated' | 'user_not_found'>;
}

export function cognitoClient(region: string, endpoint?: string): CognitoIdentityProviderClient {
  return new CognitoIdentityProviderClient(clientOptions(region, endpoint));
}

export function cognitoPictureSync(client: CognitoIdentityProviderClient, userPoolId: string): PictureSync {
  return {
    async setPicture(playerId, url) {
      try {
        await client.send(
          new AdminUpdateUserAttributesCommand({ UserPoolId: userPoolId, Username: playerId, UserAttributes: [{ Name: 'picture', Value: url }] }),
        );
        return 'updated';
      } catch (err) {
        // Retrying cannot create the user: holding back the ready event for it would only hurt.
        if ((err as { name?: string }).name === 'UserNotFoundException') return 'user_not_found';
        throw err;
      }
    },
  };
}
