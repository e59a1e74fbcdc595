// Shared Jest settings. Tests run as native ES modules (Node 24, `--experimental-vm-modules`),
// transformed by SWC: ts-jest does not follow TypeScript 7 and would only re-do the type
// check that `tsc --noEmit` (the `typecheck` target) already does.
export default {
  testEnvironment: 'node',
  extensionsToTreatAsEsm: ['.ts'],
  moduleFileExtensions: ['ts', 'js', 'mjs', 'cjs', 'json'],
  transform: {
    '^.+\\.ts$': [
      '@swc/jest',
      {
        jsc: { parser: { syntax: 'typescript' }, target: 'es2024' },
        module: { type: 'es6' },
      },
    ],
  },
  testMatch: ['<rootDir>/**/*.test.ts'],
  testPathIgnorePatterns: ['/node_modules/', '/cdk.out/'],
  clearMocks: true,
  // A child process a failed test could not stop (a stack, an agent) must not keep CI
  // waiting for ever after the results are in; tests still kill what they start.
  forceExit: true,
  testTimeout: 30000,
};
