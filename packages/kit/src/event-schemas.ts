/**
 * The events' data as JSON Schema (2020-12), generated from the zod schemas the services
 * validate with, for consumers outside this code base: `npm run docs` writes them to docs/events/,
 * and a test fails when they drift from the code.
 */
import { z } from 'zod';
import { eventDataSchemas, s3EntitySchema } from './events.js';
import { S3_OBJECT_CREATED_PREFIX } from './topology.js';

/** File name (without .schema.json) -> the JSON Schema of that event type's `data`. */
export function eventJsonSchemas(): Record<string, Record<string, unknown>> {
  const schemas: [string, string, z.ZodType][] = [
    ...Object.entries(eventDataSchemas).map(([type, schema]): [string, string, z.ZodType] => [type, type, schema]),
    // The S3 adapter's events carry the record's `s3` element (CloudEvents AWS S3 adapter mapping).
    [`${S3_OBJECT_CREATED_PREFIX}*`, 'com.amazonaws.s3.ObjectCreated', s3EntitySchema],
  ];
  return Object.fromEntries(
    schemas.map(([type, file, schema]) => [
      file,
      { ...z.toJSONSchema(schema, { target: 'draft-2020-12', unrepresentable: 'any' }), title: type, description: `The data of CloudEvents of type ${type}` },
    ]),
  );
}
