import preset from '../../jest.preset.js';

export default {
  ...preset,
  displayName: 'workspace-agent',
  globalSetup: '../../libs/testing/src/global-setup.ts',
  globalTeardown: '../../libs/testing/src/global-teardown.ts',
};
