/** GET /v1/push/vapid-public-key: the key browsers subscribe with, open to anyone. */
import { z } from 'zod';
import { createRoute, json, type ApiService } from '@avatar-pipeline/kit/openapi';

const vapidKeySchema = z
  .object({ publicKey: z.string().meta({ description: "The VAPID public key (base64url, uncompressed P-256 point): pushManager.subscribe's applicationServerKey" }) })
  .meta({ id: 'VapidPublicKey' });

const getVapidKey = createRoute({
  method: 'get',
  path: '/v1/push/vapid-public-key',
  tags: ['push'],
  summary: 'The key browsers subscribe with',
  responses: { 200: json(vapidKeySchema, 'The key') },
});

export function vapidKeyRoute(app: ApiService['app'], publicKey: string): void {
  app.openapi(getVapidKey, (c) => {
    c.header('Cache-Control', 'public, max-age=300');
    return c.json({ publicKey }, 200);
  });
}
