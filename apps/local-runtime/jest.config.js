import preset from '../../jest.preset.js';

export default {
  ...preset,
  displayName: 'local-runtime',
  // DynamoDB Local and fauxqs: the task events go to a real SQS queue.
  globalSetup: '<rootDir>/../../libs/testing/src/global-setup.ts',
  globalTeardown: '<rootDir>/../../libs/testing/src/global-teardown.ts',
};
