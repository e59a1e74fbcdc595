import preset from '../../jest.preset.js';

export default {
  ...preset,
  displayName: 'session',
  globalSetup: '../../libs/testing/src/global-setup.ts',
  globalTeardown: '../../libs/testing/src/global-teardown.ts',
  // Queue round trips, redeliveries after a visibility timeout and a property test against
  // DynamoDB Local on a shared 2-core machine.
  testTimeout: 120_000,
};
