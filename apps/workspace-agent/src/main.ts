/**
 * The workspace agent: the process inside each container. Started by the runtime with its
 * environment (see env.ts); talks back to a local supervisor over the IPC channel when there
 * is one (`ready`, `stopping`), and otherwise only through its exit code and logs.
 */
import { SQSClient } from '@aws-sdk/client-sqs';
import {
  ConfigError,
  SAVE_FAILED_EXIT_CODE,
  fallbackRefPrefix,
  type AgentStartConfig,
} from '@berth/domain';
// The recorder alone: the agent starts in every container and needs none of the services' wiring.
import { recordAwsCallsFromEnv } from '@berth/platform/aws-calls';
import { START_FAILED_EXIT_CODE, WorkspaceAgent, type AgentNotice } from './agent.ts';
import {
  becomeIdentity,
  forbidGitPrompts,
  readAgentEnv,
  readStartConfig,
  recorderEnv,
} from './env.ts';
import { GitWorkspace, gitErrorDetail } from './git-workspace.ts';
import { createLogger } from './logger.ts';
import { awaitIdentity } from './pool-member.ts';
import { createWorkload } from './workload.ts';

/** EX_CONFIG: the environment the runtime gave is unusable. */
const CONFIG_EXIT_CODE = 78;

function notify(notice: AgentNotice): Promise<void> {
  return new Promise((resolve) => {
    if (!process.send || !process.connected) {
      resolve();
      return;
    }
    try {
      process.send(notice, undefined, {}, () => resolve());
    } catch {
      resolve();
    }
  });
}

/**
 * A warm-pool member waits here for the identity of the container it becomes; it says `ready`
 * first (the runtime reports its task RUNNING: it is free to claim). False: stop now.
 */
async function becomeContainer(start: AgentStartConfig): Promise<boolean> {
  const logger = createLogger({ level: start.logLevel });
  const sqs = new SQSClient({ useQueueUrlAsEndpoint: false });
  recordAwsCallsFromEnv('workspace-agent', [sqs], recorderEnv());
  const stop = new AbortController();
  const onStop = (): void => stop.abort();
  process.once('SIGTERM', onStop);
  process.once('SIGINT', onStop);
  if (process.connected) process.once('disconnect', onStop);
  await notify({ type: 'ready' });
  logger.info({ slot: start.poolSlot }, 'pool member waiting for a claim');
  const identity = await awaitIdentity({
    sqs,
    queueUrl: start.poolControlQueueUrl ?? '',
    logger,
    signal: stop.signal,
  });
  process.off('SIGTERM', onStop);
  process.off('SIGINT', onStop);
  process.off('disconnect', onStop);
  sqs.destroy();
  if (!identity) return false;
  logger.info(
    { containerId: identity.containerId, generation: identity.generation },
    'claimed: becoming this container',
  );
  becomeIdentity(identity);
  return true;
}

/**
 * BERTH_LOCAL_START_DELAY (local runtime only, for benchmarks): waits this long before doing
 * anything, as a Fargate task spends provisioning and pulling its image before its process
 * starts. A stop meanwhile ends it at once.
 */
async function simulatedStartDelay(ms: number | undefined): Promise<void> {
  if (ms === undefined) return;
  const stop = (): void => process.exit(0);
  process.once('SIGTERM', stop);
  if (process.connected) process.once('disconnect', stop);
  await new Promise((resolve) => setTimeout(resolve, ms));
  process.off('SIGTERM', stop);
  process.off('disconnect', stop);
}

async function main(): Promise<void> {
  const start = readStartConfig();
  await simulatedStartDelay(start.localStartDelayMs);
  if (start.poolMember && !(await becomeContainer(start))) process.exit(0);
  const read = readAgentEnv();
  if (read instanceof ConfigError) {
    const variables = read.problems.map((p) => p.field ?? '?');
    createLogger({ level: 'info' }).fatal(
      { problems: read.problems.map((p) => ({ variable: p.field, message: p.message })) },
      'invalid environment',
    );
    console.error(`workspace-agent: ${read.message}`);
    await notify({
      type: 'stopping',
      reason: `start_failed:invalid environment (${variables.join(', ')})`,
    });
    process.exit(CONFIG_EXIT_CODE);
  }
  const { env, gitCredentials } = read;

  forbidGitPrompts();

  const logger = createLogger({
    level: env.logLevel,
    containerId: env.containerId,
    generation: env.generation,
  });
  const sqs = new SQSClient({ useQueueUrlAsEndpoint: false });
  recordAwsCallsFromEnv('workspace-agent', [sqs], recorderEnv());
  const agent = new WorkspaceAgent({
    env,
    logger,
    sqs,
    workspace: new GitWorkspace({
      workspacePath: env.workspacePath,
      repoUrl: env.repoUrl,
      userId: env.key.userId,
      fallbackRefPrefix: fallbackRefPrefix(env.containerId, env.generation),
      logger,
      credentials: gitCredentials,
    }),
    workload: createWorkload(env.workloadCommand, {
      onProcessGroup: (pgid) => void notify({ type: 'workload', pgid }),
    }),
    notify,
    // Saved, then a non-zero exit: the task's end fails the record, and the next request starts
    // the next generation with new queues (a container whose queues are gone is not reused).
    onInputQueueGone: () => {
      if (!agent.stopping) stop('input queue gone', true);
    },
  });

  const stop = (cause: string, crashed: boolean): void => {
    agent.shutdown(cause).then(
      (code) => process.exit(crashed && code === 0 ? 1 : code),
      (error: unknown) => {
        logger.fatal({ err: error }, 'the shutdown itself failed');
        process.exit(SAVE_FAILED_EXIT_CODE);
      },
    );
  };
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.on(signal, () => {
      if (agent.stopping) {
        logger.warn({ signal }, 'already stopping');
        return;
      }
      stop(signal, false);
    });
  }
  // Started by the local runtime over IPC: if the runtime dies, save and go rather than run
  // on unsupervised (on ECS there is no channel and the task's SIGTERM does this).
  if (process.connected) {
    process.once('disconnect', () => {
      if (!agent.stopping) stop('supervisor gone', false);
    });
  }
  process.on('uncaughtException', (error) => {
    logger.fatal({ err: error }, 'uncaught exception; saving the workspace before exiting');
    stop('uncaughtException', true);
  });
  process.on('unhandledRejection', (reason) => {
    logger.fatal({ err: reason }, 'unhandled rejection; saving the workspace before exiting');
    stop('unhandledRejection', true);
  });

  logger.info(
    {
      workspacePath: env.workspacePath,
      workload: env.workloadCommand === undefined ? 'built-in' : 'command',
    },
    'starting',
  );
  try {
    await agent.start();
  } catch (error) {
    // A stop that arrived during the start owns the exit.
    if (agent.stopping) return;
    const detail = gitErrorDetail(error);
    // Only the redacted detail: a git error may quote the remote URL with its credentials.
    logger.fatal({ detail }, 'start failed');
    await notify({ type: 'stopping', reason: `start_failed:${detail}` });
    process.exit(START_FAILED_EXIT_CODE);
  }
}

await main();
