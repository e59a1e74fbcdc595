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
      'no-restricted-properties': [
        'error',
        { object: 'it', property: 'only', message: 'No focused tests.' },
        { object: 'it', property: 'skip', message: 'No skipped tests.' },
        { object: 'describe', property: 'only', message: 'No focused tests.' },
        { object: 'describe', property: 'skip', message: 'No skipped tests.' },
        { object: 'test', property: 'only', message: 'No focused tests.' },
        { object: 'test', property: 'skip', message: 'No skipped tests.' },
      ],
      '@nx/enforce-module-boundaries': ['error', boundaries(false)],
    },
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
