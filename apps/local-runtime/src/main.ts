/**
 * The local runtime: a stand-in for the ECS control plane that runs workspace agents as
 * processes of this machine. On SIGTERM or SIGINT it stops every agent gracefully (each
 * saves its workspace), reports their STOPPED events and exits 0.
 */
import { startLocalRuntime } from './local-runtime.ts';

const runtime = await startLocalRuntime(process.env).catch((error: unknown) => {
  console.error('local runtime failed to start:', error instanceof Error ? error.message : error);
  process.exit(1);
});

let stopping = false;
const stop = (signal: NodeJS.Signals): void => {
  if (stopping) return;
  stopping = true;
  runtime.supervisor.logger.info({ signal }, 'shutting down');
  runtime.close().then(
    () => process.exit(0),
    (error: unknown) => {
      runtime.supervisor.logger.error({ err: error }, 'shutdown failed');
      process.exit(1);
    },
  );
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
