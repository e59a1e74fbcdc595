import js from '@eslint/js';
import nx from '@nx/eslint-plugin';
import prettier from 'eslint-config-prettier';
import tseslint from 'typescript-eslint';

/** The layering: the domain depends on nothing, core on the domain, apps never on each other. */
function boundaries(inTests) {
  const testing = inTests ? ['type:testing'] : [];
  return {
    allow: [],
    enforceBuildableLibDependency: false,
    depConstraints: [
      {
        sourceTag: 'type:domain',
        onlyDependOnLibsWithTags: ['type:domain', ...testing],
        bannedExternalImports: inTests
          ? []
          : [
              '@aws-sdk/*',
              'node:fs',
              'node:child_process',
              'node:net',
              'node:http',
              'fs',
              'child_process',
              'fastify',
              'pino',
              'prom-client',
              'sqs-consumer',
              'simple-git',
            ],
      },
      {
        sourceTag: 'type:application',
        onlyDependOnLibsWithTags: ['type:domain', ...testing],
        bannedExternalImports: inTests
          ? []
          : ['@aws-sdk/*', 'fastify', 'node:child_process', 'child_process'],
      },
      { sourceTag: 'type:adapter', onlyDependOnLibsWithTags: ['type:domain', ...testing] },
      {
        sourceTag: 'type:platform',
        onlyDependOnLibsWithTags: ['type:domain', 'type:application', 'type:adapter', ...testing],
      },
      {
        sourceTag: 'type:testing',
        onlyDependOnLibsWithTags: ['type:domain', 'type:adapter', 'type:platform', 'type:testing'],
      },
      {
        sourceTag: 'type:app',
        onlyDependOnLibsWithTags: [
          'type:domain',
          'type:application',
          'type:adapter',
          'type:platform',
          ...testing,
        ],
      },
      { sourceTag: 'type:infra', onlyDependOnLibsWithTags: ['type:domain', ...testing] },
      {
        sourceTag: 'type:tools',
        onlyDependOnLibsWithTags: [
          'type:domain',
          'type:application',
          'type:adapter',
          'type:platform',
          'type:testing',
        ],
      },
    ],
  };
}

const FOCUSED_TESTS = [
  { object: 'it', property: 'only', message: 'No focused tests.' },
  { object: 'it', property: 'skip', message: 'No skipped tests.' },
  { object: 'describe', property: 'only', message: 'No focused tests.' },
  { object: 'describe', property: 'skip', message: 'No skipped tests.' },
  { object: 'test', property: 'only', message: 'No focused tests.' },
  { object: 'test', property: 'skip', message: 'No skipped tests.' },
];

const PROCESS_ENV = {
  object: 'process',
  property: 'env',
  message:
    'Read variables through libs/domain/src/config.ts (loadConfig, loadAgentConfig, loadClientConfig...); only the entry points that hand it the environment touch process.env.',
};

/**
 * Where `process.env` may appear: the entry points that hand the environment to the domain's
 * config module (a service's, the local runtime's, the CDK app's, the CLI's context, the
 * agent's env.ts), and the tools, test support and tests, which set up environments for the
 * processes they start. A child's environment built from this one is allowed inline, with a
 * reason, where it is made.
 */
const PROCESS_ENV_ALLOWED = [
  'libs/platform/src/service.ts',
  'apps/local-runtime/src/main.ts',
  'infra/src/main.ts',
  'apps/cli/src/context.ts',
  'apps/workspace-agent/src/env.ts',
  // The local stack's default dev server: a program of its own, reading PORT and HOST.
  'apps/workspace-agent/src/static-site.ts',
  'tools/**/*.ts',
  'libs/testing/**/*.ts',
  '**/*.test.ts',
  '**/tests/**/*.ts',
];

export default tseslint.config(
  {
    ignores: [
      '**/node_modules/**',
      '**/cdk.out/**',
      '**/.nx/**',
      '**/.berth/**',
      '**/*.js',
      '**/*.cjs',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    plugins: { '@nx': nx },
    rules: {
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_' },
      ],
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/switch-exhaustiveness-check': 'error',
      'no-console': ['error', { allow: ['error'] }],
      'no-restricted-properties': ['error', ...FOCUSED_TESTS, PROCESS_ENV],
      '@nx/enforce-module-boundaries': ['error', boundaries(false)],
    },
  },
  {
    files: PROCESS_ENV_ALLOWED,
    rules: { 'no-restricted-properties': ['error', ...FOCUSED_TESTS] },
  },
  {
    files: ['**/*.test.ts', '**/tests/**/*.ts'],
    rules: {
      // Tests of any project may use the shared fakes and engines of @berth/testing.
      '@nx/enforce-module-boundaries': ['error', boundaries(true)],
      '@typescript-eslint/no-non-null-assertion': 'off',
      // Answers parsed from JSON in tests are `any` by nature; the assertions check them.
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/unbound-method': 'off',
    },
  },
  prettier,
);
