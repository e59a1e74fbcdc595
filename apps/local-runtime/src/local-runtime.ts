import { fileURLToPath } from 'node:url';
import { setTimeout as delay } from 'node:timers/promises';
import { loadConfig, type Env } from '@berth/domain';
import { TaskEventSender } from '@berth/messaging';
import type { FastifyInstance } from 'fastify';
import { pino, type Logger } from 'pino';
import { readAgentTaskDefinition } from './agent-task.ts';
import { buildServer } from './server.ts';
import { Supervisor, type EventSink } from './supervisor.ts';

/** The real workspace agent of this repository. */
export const DEFAULT_AGENT_ENTRY = fileURLToPath(
  new URL('../../workspace-agent/src/main.ts', import.meta.url),
);

export interface LocalRuntimeOptions {
  logger?: Logger;
  /** Where task events go; by default the queue of BERTH_TASK_EVENTS_QUEUE_URL or `berth-task-events`. */
  events?: EventSink;
  /** How long to keep looking for the task event queue at start (the stack may still be making it). */
  queueLookupTimeoutMs?: number;
}

export interface LocalRuntime {
  supervisor: Supervisor;
  server: FastifyInstance;
  /** `http://127.0.0.1:<port>`: the endpoint to give the ECS client. */
  endpoint: string;
  /** Stops every task gracefully, then the server. */
  /** Stops every task; `waitForEvents: false` does not wait for their STOPPED events to be sent. */
  close(options?: { waitForEvents?: boolean }): Promise<void>;
}

async function findTaskEventQueue(logger: Logger, timeoutMs: number): Promise<TaskEventSender> {
  const deadline = Date.now() + timeoutMs;
  for (let wait = 200; ; wait = Math.min(wait * 2, 2000)) {
    try {
      return await TaskEventSender.forQueueName();
    } catch (error) {
      if (Date.now() + wait > deadline) throw error;
      logger.warn({ err: error }, 'task event queue not found yet; retrying');
      await delay(wait);
    }
  }
}

/** Reads the configuration from `env`, starts the supervisor and listens on 127.0.0.1. */
export async function startLocalRuntime(
  env: Env,
  options: LocalRuntimeOptions = {},
): Promise<LocalRuntime> {
  const config = loadConfig(env);
  const logger =
    options.logger ?? pino({ level: config.logLevel, base: { service: 'local-runtime' } });
  const queueUrl = config.taskEventsQueueUrl;
  const events =
    options.events ??
    (queueUrl
      ? new TaskEventSender({ queueUrl })
      : await findTaskEventQueue(logger, options.queueLookupTimeoutMs ?? 30_000));
  const agentTaskFile = config.agentTaskDefinitionFile;
  const agentTask = agentTaskFile ? readAgentTaskDefinition(agentTaskFile) : undefined;
  const supervisor = new Supervisor({
    dataDir: config.dataDir,
    agentEntry: config.agentEntry ?? DEFAULT_AGENT_ENTRY,
    shutdownGraceMs: config.shutdownGraceMs,
    events,
    logger,
    region: agentTask?.region ?? 'local',
    ...(agentTask ? { agentTask } : {}),
  });
  // Nothing is answered (no RunTask, no DescribeTasks saying a task is gone) while an agent of
  // a runtime that died may still write to its workspace.
  await supervisor.settleOrphans();
  const server = buildServer(supervisor);
  await server.listen({ host: '127.0.0.1', port: config.runtimePort });
  const address = server.server.address();
  const port = typeof address === 'object' && address !== null ? address.port : config.runtimePort;
  const endpoint = `http://127.0.0.1:${port}`;
  logger.info({ endpoint, dataDir: config.dataDir }, 'local runtime listening');
  return {
    supervisor,
    server,
    endpoint,
    close: async (options) => {
      await supervisor.shutdown(options);
      await server.close();
    },
  };
}
