// npm run docs: writes the generated parts of docs/ from the code (scripts/test/docs.test.ts and
// packages/kit/test/event-schemas.test.ts fail when they drift): the events' data schemas,
// docs/events/<type>.schema.json, and the configuration reference, docs/configuration.md.
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { eventJsonSchemas } from '@avatar-pipeline/kit/event-schemas';
import { configurationReference } from './configuration-reference.mjs';

const docs = join(new URL('..', import.meta.url).pathname, 'docs');
const dir = join(docs, 'events');
mkdirSync(dir, { recursive: true });
for (const file of readdirSync(dir)) if (file.endsWith('.schema.json')) rmSync(join(dir, file));
for (const [name, schema] of Object.entries(eventJsonSchemas())) writeFileSync(join(dir, `${name}.schema.json`), `${JSON.stringify(schema, null, 2)}\n`);
console.log(`docs/events: ${Object.keys(eventJsonSchemas()).length} schemas`);
writeFileSync(join(docs, 'configuration.md'), configurationReference());
console.log('docs/configuration.md');
