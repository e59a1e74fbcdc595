import preset from '../../jest.preset.js';

export default {
  ...preset,
  displayName: 'webhooks',
  globalSetup: '../../libs/testing/src/global-setup.ts',
  globalTeardown: '../../libs/testing/src/global-teardown.ts',
};
