import preset from '../jest.preset.js';

export default { ...preset, displayName: 'tools', testTimeout: 120_000 };
