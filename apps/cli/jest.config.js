import preset from '../../jest.preset.js';

export default {
  ...preset,
  displayName: 'cli',
  // The CLI runs as a child process against a whole local stack (engines, services, agents).
  testTimeout: 240_000,
};
