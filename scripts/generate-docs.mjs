// npm run docs: writes the generated parts of docs/ from the code (services/kit/test/docs.test.ts
// fails when they drift): the events' data schemas, docs/events/<type>.schema.json.
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { eventJsonSchemas } from '@avatar-pipeline/kit';

const dir = join(new URL('..', import.meta.url).pathname, 'docs', 'events');
mkdirSync(dir, { recursive: true });
for (const file of readdirSync(dir)) if (file.endsWith('.schema.json')) rmSync(join(dir, file));
for (const [name, schema] of Object.entries(eventJsonSchemas())) writeFileSync(join(dir, `${name}.schema.json`), `${JSON.stringify(schema, null, 2)}\n`);
console.log(`docs/events: ${Object.keys(eventJsonSchemas()).length} schemas`);
