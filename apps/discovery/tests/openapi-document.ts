/**
 * The OpenAPI document that discovery serves at `/docs`, rendered from the routes themselves
 * (an app built on in-memory dependencies: no route is called) and written to
 * docs/openapi.json (`npm run docs:openapi`). A test fails when the committed file drifts.
 * It lives with the tests because it builds the app on the in-memory fakes of @berth/testing,
 * which production code may not import.
 */
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { UseCases } from '@berth/core';
import { makeCoreDeps } from '@berth/testing';
import { Registry } from 'prom-client';
import { buildDiscoveryApp } from '../src/app.ts';

export const OPENAPI_FILE = fileURLToPath(new URL('../../../docs/openapi.json', import.meta.url));

export async function renderOpenApi(): Promise<string> {
  const deps = makeCoreDeps();
  const app = await buildDiscoveryApp({
    useCases: new UseCases(deps),
    store: deps.store,
    publisher: deps.publisher,
    authSecret: 'only-used-to-build-the-app-not-to-sign-anything',
    cacheTtlMs: 0,
    registry: new Registry(),
    // Every deployment has a preview gateway: the document shows its route and previewUrl.
    preview: { baseUrl: 'http://127.0.0.1:8081', domain: undefined, tokenTtlMs: 300_000 },
  });
  try {
    await app.ready();
    return `${JSON.stringify(app.swagger(), null, 2)}\n`;
  } finally {
    await app.close();
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  writeFileSync(OPENAPI_FILE, await renderOpenApi());
  process.stdout.write('wrote docs/openapi.json\n');
}
