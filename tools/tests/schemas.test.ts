import { readFileSync } from 'node:fs';
import { SCHEMAS, SCHEMA_DIR, renderSchema } from '../src/docs/schemas.ts';

describe('docs/schemas', () => {
  it.each(Object.entries(SCHEMAS))(
    '%s matches the schema the code validates with',
    (file, schema) => {
      expect(readFileSync(`${SCHEMA_DIR}${file}`, 'utf8')).toBe(renderSchema(schema));
    },
  );
});
