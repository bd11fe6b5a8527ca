/** The player-facing HTTP API: profiles (any signed-in player) and upload status (owner only). */
import type { OpenAPIHono } from '@hono/zod-openapi';
import { z } from 'zod';
import { HttpError } from '@avatar-pipeline/kit/errors';
import { avatarSchema, labelSchema, playerIdSchema, reasonSchema, uploadIdSchema } from '@avatar-pipeline/kit/events';
import type { AppEnv } from '@avatar-pipeline/kit/service';
import { openStatuses, terminalStatuses, type UploadStore } from '@avatar-pipeline/kit/table';
import { BEARER, createRoute, errorResponses, invalidAs, json } from '@avatar-pipeline/kit/openapi';
import type { ProfileStore } from './profiles.js';

/**
 * Profiles are read-heavy (lobbies, leaderboards) and change rarely; the uploader learns of a
 * new avatar from the ready event and the upload status, so 5 s of staleness goes unnoticed.
 * `private`: the response sits behind auth, shared caches must not keep it.
 */
const PROFILE_CACHE = 'private, max-age=5';
/** A status is polled while it changes, and a 404 may turn into a profile any second. */
const NO_STORE = { 'Cache-Control': 'no-store' };

const avatar = avatarSchema.meta({ id: 'Avatar', description: 'URLs of the current avatar: WebP squares by size in pixels, and the full image' });

const profileSchema = z
  .object({ playerId: z.string(), avatar, updatedAt: z.iso.datetime() })
  .meta({ id: 'Profile' });

const uploadStatusSchema = z
  .object({
    uploadId: z.string(),
    status: z.enum([...openStatuses, ...terminalStatuses]).meta({ description: 'pending, processing and in_review (a moderator decides) change; the others are final' }),
    reason: reasonSchema.optional().meta({ description: 'Why it was rejected or failed' }),
    labels: z.array(labelSchema).optional().meta({ description: 'What moderation found, for a rejection' }),
    avatar: avatar.optional(),
    createdAt: z.iso.datetime(),
    updatedAt: z.iso.datetime(),
  })
  .meta({ id: 'UploadStatus' });

const getProfile = createRoute({
  method: 'get',
  path: '/v1/players/{playerId}/profile',
  tags: ['players'],
  summary: "A player's profile: their current avatar",
  security: [{ [BEARER]: [] }],
  request: { params: z.object({ playerId: playerIdSchema }) },
  responses: {
    200: json(profileSchema, 'The profile'),
    ...errorResponses(400, 401, 404, 503),
  },
});

const getUpload = createRoute({
  method: 'get',
  path: '/v1/uploads/{uploadId}',
  tags: ['uploads'],
  summary: "One of the caller's uploads: its status, and its avatar once ready",
  description: "Another player's upload is not found (404), so its existence does not leak.",
  security: [{ [BEARER]: [] }],
  request: { params: z.object({ uploadId: uploadIdSchema }) },
  responses: {
    200: json(uploadStatusSchema, 'The status'),
    ...errorResponses(400, 401, 404, 503),
  },
});

export function apiRoutes(app: OpenAPIHono<AppEnv>, deps: { profiles: ProfileStore; uploads: UploadStore }): void {
  app.openapi(
    getProfile,
    async (c) => {
      const { playerId } = c.req.valid('param');
      const profile = await deps.profiles.get(playerId);
      if (!profile) throw new HttpError(404, 'profile_not_found', 'this player has no avatar yet', NO_STORE);
      c.header('Cache-Control', PROFILE_CACHE);
      return c.json({ playerId: profile.playerId, avatar: profile.avatar, updatedAt: profile.updatedAt }, 200);
    },
    invalidAs('invalid_player_id'),
  );

  // Looked up under the caller's own key: another player's upload is simply not there (404, not
  // 403, so existence does not leak).
  app.openapi(
    getUpload,
    async (c) => {
      const { uploadId } = c.req.valid('param');
      const upload = await deps.uploads.get(c.get('playerId'), uploadId);
      if (!upload) throw new HttpError(404, 'upload_not_found', 'no such upload', NO_STORE);
      const { status, reason, labels, avatar, createdAt, updatedAt } = upload;
      c.header('Cache-Control', 'no-store');
      return c.json({ uploadId, status, ...(reason ? { reason } : {}), ...(labels ? { labels } : {}), ...(avatar ? { avatar } : {}), createdAt, updatedAt }, 200);
    },
    invalidAs('invalid_upload_id'),
  );
}
