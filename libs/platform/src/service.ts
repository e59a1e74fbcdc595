import { ConfigError, loadConfig, type BerthConfig } from '@berth/domain';
import { createLogger, type Logger } from './logger.ts';

/**
 * Reads the configuration or exits with every problem listed: a service that starts with a
 * typo in a timeout would do the wrong thing quietly.
 */
export function loadConfigOrExit(
  service: string,
  env: NodeJS.ProcessEnv = process.env,
): BerthConfig {
  try {
    return loadConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(`berth ${service}: ${error.message}`);
      process.exit(78);
    }
    throw error;
  }
}

/**
 * Runs `stop` once on SIGTERM or SIGINT, then exits; a second signal exits at once.
 * Returns a function that triggers the same shutdown from code.
 */
export function onShutdown(
  log: Logger,
  stop: () => Promise<void>,
  timeoutMs = 30_000,
): () => Promise<void> {
  let stopping: Promise<void> | undefined;
  const shutdown = (signal: string): Promise<void> => {
    if (stopping) return stopping;
    log.info({ signal }, 'shutting down');
    const timer = setTimeout(() => {
      log.error({ timeoutMs }, 'shutdown took too long; exiting');
      process.exit(1);
    }, timeoutMs);
    timer.unref();
    stopping = stop().then(
      () => {
        log.info('stopped');
        process.exit(0);
      },
      (error: unknown) => {
        log.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
    return stopping;
  };
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.on(signal, () => {
      if (stopping) process.exit(1);
      void shutdown(signal);
    });
  }
  // Started by the local stack with an IPC channel: if the stack dies, so do we.
  if (process.connected) process.once('disconnect', () => void shutdown('parent exited'));
  return () => shutdown('request');
}

export { createLogger };
