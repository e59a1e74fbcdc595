/**
 * Writes the JSON Schemas of berth's public messages and records to docs/schemas, from the
 * same TypeBox definitions the code validates with (`npm run docs:schemas`). A test checks
 * that the committed files match, so the docs cannot drift from the code.
 */
import {
  CommandSchema,
  ContainerJsonSchema,
  EventSchema,
  LocalStackSchema,
  SessionJsonSchema,
  TaskStateChangeSchema,
} from '@berth/domain';
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const SCHEMAS = {
  'command.json': CommandSchema,
  'event.json': EventSchema,
  'container.json': ContainerJsonSchema,
  'session.json': SessionJsonSchema,
  'task-state-change.json': TaskStateChangeSchema,
  'local-stack.json': LocalStackSchema,
} as const;

export function renderSchema(schema: object): string {
  return `${JSON.stringify({ $schema: 'https://json-schema.org/draft/2020-12/schema', ...schema }, null, 2)}\n`;
}

export const SCHEMA_DIR = fileURLToPath(new URL('../../../docs/schemas/', import.meta.url));

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  for (const [file, schema] of Object.entries(SCHEMAS)) {
    writeFileSync(`${SCHEMA_DIR}${file}`, renderSchema(schema));
    process.stdout.write(`wrote docs/schemas/${file}\n`);
  }
}
