import { fileURLToPath } from 'node:url';

/** The local stack's default dev server: the static server of the workspace (a real program). */
export const STATIC_SITE_ENTRY = fileURLToPath(
  new URL('../../../apps/workspace-agent/src/static-site.ts', import.meta.url),
);

/**
 * BERTH_DEV_SERVER_COMMAND as the local stack sets it by default (`npm start`): this Node.js
 * running the static server in the agent's dev server directory (docs/contract.md, "The dev
 * server").
 */
export const STATIC_SITE_COMMAND = `"${process.execPath}" "${STATIC_SITE_ENTRY}"`;
