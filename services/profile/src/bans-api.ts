/**
 * The ban list's API (moderators only): list the bans, ban the picture of an upload (by its
 * fingerprint, which moderate recorded on the upload's OWNER item), lift a ban. A ban's id is its
 * fingerprint, so banning the same picture twice is one ban. A ban applies to new uploads (moderate
 * refuses pictures near a banned fingerprint before its model runs) and, when the banned upload is
 * its player's current avatar, to that avatar: it is removed.
 */
import type { OpenAPIHono } from '@hono/zod-openapi';
import { z } from 'zod';
import { banReasons, fingerprintSchema, type Ban, type BanList } from '@avatar-pipeline/kit/bans';
import { HttpError } from '@avatar-pipeline/kit/errors';
import { labelSchema, uploadIdSchema } from '@avatar-pipeline/kit/events';
import { requireRole } from '@avatar-pipeline/kit/player-auth';
import type { AppEnv } from '@avatar-pipeline/kit/service';
import type { UploadStore } from '@avatar-pipeline/kit/table';
import type { UploadOwners } from '@avatar-pipeline/kit/upload-owners';
import { BEARER, createRoute, errorResponses, invalidAs, json, jsonRequest } from '@avatar-pipeline/kit/openapi';
import type { AvatarRemoval } from './avatar-removal.js';
import { pageQuery } from './moderation.js';

const NO_STORE = { 'Cache-Control': 'no-store' };

export const banSchema = z
  .object({
    id: z.string().meta({ description: 'The fingerprint: one ban per picture' }),
    fingerprint: z.string().meta({ description: "The picture's 64-bit perceptual hash, 16 hex digits" }),
    uploadId: z.string().meta({ description: 'The upload the ban was made from' }),
    reason: z.enum(banReasons).meta({ description: 'moderation: rejected by the model; moderator: rejected in review; manual: banned here' }),
    by: z.string().meta({ description: '`moderate`, or the moderator\'s player id' }),
    createdAt: z.iso.datetime(),
    labels: z.array(labelSchema).optional().meta({ description: 'What moderation found in the picture' }),
  })
  .meta({ id: 'Ban' });

const banPageSchema = z
  .object({
    items: z.array(banSchema),
    cursor: z.string().optional().meta({ description: 'Pass as `cursor` for the next page; absent on the last one' }),
  })
  .meta({ id: 'BanPage' });

const banRequestSchema = z.strictObject({ uploadId: uploadIdSchema.meta({ description: 'The upload whose picture is banned' }) }).meta({ id: 'BanRequest' });

const security = [{ [BEARER]: [] }];

const listBansRoute = (role: string) =>
  createRoute({
    method: 'get',
    path: '/v1/moderation/bans',
    tags: ['moderation'],
    summary: 'The banned fingerprints (moderators only)',
    security,
    middleware: [requireRole(role)] as const,
    request: { query: z.object(pageQuery) },
    responses: { 200: json(banPageSchema, 'A page of bans'), ...errorResponses(400, 401, 403, 503) },
  });

const addBanRoute = (role: string) =>
  createRoute({
    method: 'post',
    path: '/v1/moderation/bans',
    tags: ['moderation'],
    summary: "Ban an upload's picture; if it is its player's current avatar, remove that too (moderators only)",
    security,
    middleware: [requireRole(role)] as const,
    request: { body: jsonRequest(banRequestSchema) },
    responses: {
      201: json(banSchema, 'Banned'),
      200: json(banSchema, 'The picture was already banned'),
      ...errorResponses(400, 401, 403, 404, 415, 503),
    },
  });

const removeBanRoute = (role: string) =>
  createRoute({
    method: 'delete',
    path: '/v1/moderation/bans/{id}',
    tags: ['moderation'],
    summary: 'Lift a ban (moderators only)',
    security,
    middleware: [requireRole(role)] as const,
    request: { params: z.object({ id: fingerprintSchema.meta({ description: 'The ban id (its fingerprint)' }) }) },
    responses: { 204: { description: 'Lifted' }, ...errorResponses(400, 401, 403, 404, 503) },
  });

export interface BansApiDeps {
  bans: BanList;
  owners: Pick<UploadOwners, 'get'>;
  uploads: Pick<UploadStore, 'get'>;
  /** Removes the player's current avatar if it is (or was, before a removal that did not finish) this upload's: `removeAvatar`. */
  removeAvatar: (playerId: string, uploadId: string) => Promise<AvatarRemoval>;
  moderatorRole: string;
}

const present = (ban: Ban) => banSchema.parse(ban);

export function bansRoutes(app: OpenAPIHono<AppEnv>, deps: BansApiDeps): void {
  const { bans, moderatorRole: role } = deps;

  app.openapi(listBansRoute(role), async (c) => {
    const { limit, cursor } = c.req.valid('query');
    const page = await bans.list({ limit, ...(cursor ? { cursor } : {}) });
    c.header('Cache-Control', 'no-store');
    return c.json({ items: page.items.map(present), ...(page.cursor ? { cursor: page.cursor } : {}) }, 200);
  });

  app.openapi(
    addBanRoute(role),
    async (c) => {
      const { uploadId } = c.req.valid('json');
      const owner = await deps.owners.get(uploadId);
      if (!owner) throw new HttpError(404, 'not_found', 'no such upload, or it was never fingerprinted', NO_STORE);
      const { playerId, fingerprint } = owner;
      const [existing, record] = await Promise.all([bans.get(fingerprint), deps.uploads.get(playerId, uploadId)]);
      // `add` also when the ban exists: it keeps the first ban and rewrites its index entries, which
      // an earlier add may have left unwritten (a crash between its two steps).
      const ban = await bans.add({ fingerprint, uploadId, reason: 'manual', by: c.get('playerId'), ...(record?.labels ? { labels: record.labels } : {}) });
      // Also when the ban already existed: a repeat finishes a removal that failed the first time.
      const removal = await deps.removeAvatar(playerId, uploadId);
      c.get('log').info({ uploadId, playerId, fingerprint, created: !existing, avatarRemoved: removal.uploadId !== undefined }, 'picture banned');
      c.header('Cache-Control', 'no-store');
      return existing ? c.json(present(ban), 200) : c.json(present(ban), 201);
    },
    invalidAs('invalid_request'),
  );

  app.openapi(
    removeBanRoute(role),
    async (c) => {
      const { id } = c.req.valid('param');
      if (!(await bans.remove(id))) throw new HttpError(404, 'not_found', 'no such ban', NO_STORE);
      c.get('log').info({ fingerprint: id }, 'ban lifted');
      return c.body(null, 204);
    },
    invalidAs('invalid_ban_id'),
  );
}
