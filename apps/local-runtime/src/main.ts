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
const stop = (cause: string, waitForEvents = true): void => {
  if (stopping) return;
  stopping = true;
  runtime.supervisor.logger.info({ cause }, 'shutting down');
  runtime.close({ waitForEvents }).then(
    () => process.exit(0),
    (error: unknown) => {
      runtime.supervisor.logger.error({ err: error }, 'shutdown failed');
      process.exit(1);
    },
  );
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
// Started by the local stack with an IPC channel: when the stack is gone (even killed by
// SIGKILL, which closes the channel), stop the agents the same way rather than run on. The
// task event queue went with the stack's fauxqs, so their STOPPED events are not waited for.
if (process.connected) process.once('disconnect', () => stop('the local stack is gone', false));
