import preset from '../../../jest.preset.js';

export default {
  ...preset,
  displayName: 'dynamodb',
  // Integration tests run against a real DynamoDB Local started once for the whole run.
  globalSetup: '<rootDir>/../../testing/src/global-setup.ts',
  globalTeardown: '<rootDir>/../../testing/src/global-teardown.ts',
  // Every test talks to DynamoDB Local, on machines shared with other builds.
  testTimeout: 90_000,
};
