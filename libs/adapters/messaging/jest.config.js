import preset from '../../../jest.preset.js';

export default {
  ...preset,
  displayName: 'messaging',
  // Integration tests run against the real fauxqs SQS/SNS emulator, started once per run.
  globalSetup: '<rootDir>/../../testing/src/global-setup.ts',
  globalTeardown: '<rootDir>/../../testing/src/global-teardown.ts',
};
