/** The player-facing HTTP API: profiles (any signed-in player) and upload status (owner only). */
import type { Hono } from 'hono';
import { HttpError, parseParam, playerIdSchema, uploadIdSchema, type AppEnv, type UploadStore } from '@avatar-pipeline/kit';
import type { ProfileStore } from './profiles.js';

/**
 * Profiles are read-heavy (lobbies, leaderboards) and change rarely; the uploader learns of a
 * new avatar from the ready event and the upload status, so 5 s of staleness goes unnoticed.
 * `private`: the response sits behind auth, shared caches must not keep it.
 */
const PROFILE_CACHE = 'private, max-age=5';
/** A status is polled while it changes, and a 404 may turn into a profile any second. */
const NO_STORE = { 'Cache-Control': 'no-store' };

export function apiRoutes(app: Hono<AppEnv>, deps: { profiles: ProfileStore; uploads: UploadStore }): void {
  app.get('/v1/players/:playerId/profile', async (c) => {
    const playerId = parseParam(playerIdSchema, c.req.param('playerId'), 400, 'invalid_player_id');
    const profile = await deps.profiles.get(playerId);
    if (!profile) throw new HttpError(404, 'profile_not_found', 'this player has no avatar yet', NO_STORE);
    c.header('Cache-Control', PROFILE_CACHE);
    return c.json({ playerId: profile.playerId, avatar: profile.avatar, updatedAt: profile.updatedAt });
  });

  // Looked up under the caller's own key: another player's upload is simply not there (404, not
  // 403, so existence does not leak).
  app.get('/v1/uploads/:uploadId', async (c) => {
    const uploadId = parseParam(uploadIdSchema, c.req.param('uploadId'), 400, 'invalid_upload_id');
    const upload = await deps.uploads.get(c.get('playerId'), uploadId);
    if (!upload) throw new HttpError(404, 'upload_not_found', 'no such upload', NO_STORE);
    const { status, reason, labels, avatar, createdAt, updatedAt } = upload;
    c.header('Cache-Control', 'no-store');
    return c.json({ uploadId, status, ...(reason ? { reason } : {}), ...(labels ? { labels } : {}), ...(avatar ? { avatar } : {}), createdAt, updatedAt });
  });
}
