import preset from '../../jest.preset.js';

export default {
  ...preset,
  displayName: 'preview-gateway',
  globalSetup: '../../libs/testing/src/global-setup.ts',
  globalTeardown: '../../libs/testing/src/global-teardown.ts',
};
