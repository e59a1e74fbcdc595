import { readFileSync } from 'node:fs';
import { OPENAPI_FILE, renderOpenApi } from './openapi-document.ts';

describe('docs/openapi.json', () => {
  it('is the document discovery serves at /docs (regenerate: npm run docs:openapi)', async () => {
    // Act
    const rendered = await renderOpenApi();

    // Assess
    expect(readFileSync(OPENAPI_FILE, 'utf8')).toBe(rendered);
  });
});
