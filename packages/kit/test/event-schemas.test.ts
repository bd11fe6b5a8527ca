import { readdirSync, readFileSync } from 'node:fs';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { describe, expect, it } from 'vitest';
import { eventJsonSchemas } from '../src/event-schemas.js';
import { EventType } from '../src/topology.js';

const dir = new URL('../../../docs/events/', import.meta.url);

describe('event data JSON Schemas (docs/events)', () => {
  const generated = eventJsonSchemas();

  it('are what `npm run docs` writes from the code, and nothing else', () => {
    const files = readdirSync(dir).filter((f) => f.endsWith('.schema.json'));
    expect(files.sort()).toEqual(Object.keys(generated).map((name) => `${name}.schema.json`).sort());
    for (const [name, schema] of Object.entries(generated)) {
      expect(JSON.parse(readFileSync(new URL(`${name}.schema.json`, dir), 'utf8')), `${name}: run npm run docs`).toEqual(schema);
    }
  });

  it('accept the data the services send and refuse what they would refuse', () => {
    const ajv = new Ajv2020({ strict: false });
    addFormats.default(ajv);
    const ready = ajv.compile(generated[EventType.ready]!);
    const data = {
      playerId: 'p-1',
      uploadId: '0196b7a4-6c1e-7d3a-9f00-1234567890ab',
      uploadedAt: '2026-12-05T01:00:00.000Z',
      avatar: { thumbnails: { '64': 'https://media.example/avatars/p-1/x/64.webp' }, full: 'https://media.example/avatars/p-1/x/full.webp' },
    };
    expect(ready(data), JSON.stringify(ready.errors)).toBe(true);
    expect(ready({ ...data, uploadId: 'not-a-uuid' })).toBe(false);
    expect(ready({ ...data, playerId: '../etc' })).toBe(false);
  });
});
