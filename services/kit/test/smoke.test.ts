import { describe, expect, it } from 'vitest';
import { createLogger, createService, durationMs, triggers } from '@avatar-pipeline/kit';

describe('kit smoke', () => {
  it('serves health and 404 json', async () => {
    const svc = createService({ name: 't', logger: createLogger('t', 'silent') });
    expect((await svc.app.request('/healthz')).status).toBe(200);
    const res = await svc.app.request('/nope');
    expect(res.status).toBe(404);
    expect(await res.json()).toMatchObject({ error: { code: 'not_found' } });
    expect(triggers.length).toBeGreaterThan(3);
    expect(durationMs('PT0.5S')).toBe(500);
  });
});
