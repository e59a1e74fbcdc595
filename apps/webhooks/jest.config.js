import preset from '../../jest.preset.js';

export default {
  ...preset,
  displayName: 'webhooks',
  // Waits are bounded by their own 60 s limits (signals, not timings); a loaded machine needs them.
  testTimeout: 120_000,
  globalSetup: '../../libs/testing/src/global-setup.ts',
  globalTeardown: '../../libs/testing/src/global-teardown.ts',
};
