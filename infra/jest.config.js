import preset from '../jest.preset.js';

// Each test file synthesizes the whole app once (all stacks, cdk-nag included): on a busy
// two-core CI machine that can take longer than the preset's 30 s.
export default {
  ...preset,
  displayName: 'infra',
  testTimeout: 180_000,
  // cdk.out holds staged copies of the workspace packages: Jest must not index them.
  modulePathIgnorePatterns: ['<rootDir>/cdk.out'],
};
