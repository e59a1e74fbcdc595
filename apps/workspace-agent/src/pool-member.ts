/**
 * A warm-pool member (docs/design.md, "The warm pool"): started with no container, it waits on
 * its own control queue for the identity a claim gives it, then becomes that container's agent
 * exactly as if it had been started for it (the same environment variables, set from the
 * identity). Until then there is no workspace: a stop ends it at once.
 */
import { DeleteMessageCommand, ReceiveMessageCommand, type SQSClient } from '@aws-sdk/client-sqs';
import { POOL_CONTROL_QUEUE_VARIABLE } from '@berth/domain';
import { isMissingQueue } from '@berth/messaging';
import type { Logger } from 'pino';

/** The environment variables an identity sets, as the runtime would have for a cold start. */
export interface PoolIdentity {
  containerId: string;
  generation: number;
  workspacePath: string;
  repoUrl: string | undefined;
  inputQueueUrl: string;
  outputQueueUrl: string;
}

/** An identity message as the claim sends it; undefined for anything else. */
export function parseIdentity(body: string | undefined): PoolIdentity | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body ?? '');
  } catch {
    return undefined;
  }
  if (typeof parsed !== 'object' || parsed === null) return undefined;
  const message = parsed as Record<string, unknown>;
  const text = (name: string) =>
    typeof message[name] === 'string' && message[name] !== '' ? message[name] : undefined;
  const containerId = text('containerId');
  const workspacePath = text('workspacePath');
  const inputQueueUrl = text('inputQueueUrl');
  const outputQueueUrl = text('outputQueueUrl');
  const generation = message.generation;
  if (
    message.type !== 'pool.identity' ||
    !containerId ||
    !workspacePath ||
    !inputQueueUrl ||
    !outputQueueUrl ||
    typeof generation !== 'number' ||
    !Number.isSafeInteger(generation) ||
    generation < 1
  ) {
    return undefined;
  }
  return {
    containerId,
    generation,
    workspacePath,
    repoUrl: text('repoUrl'),
    inputQueueUrl,
    outputQueueUrl,
  };
}

/** Set by the local runtime only, when it plays a task definition with volumes (a rehearsal). */
export const LOCAL_MOUNTS_VARIABLE = 'BERTH_LOCAL_MOUNTS';

/**
 * The workspace path as this process sees it: on ECS the volume is mounted at the path the
 * claim names; under the local runtime playing a task definition, the volume is a directory
 * of the machine (BERTH_LOCAL_MOUNTS), which a cold start's variables are translated to.
 */
export function localPath(path: string, mountsJson: string | undefined): string {
  if (!mountsJson?.trim()) return path;
  const mounts = JSON.parse(mountsJson) as { containerPath: string; hostPath: string }[];
  for (const { containerPath, hostPath } of mounts) {
    const root = containerPath.replace(/\/+$/, '');
    if (path === root) return hostPath;
    if (path.startsWith(`${root}/`)) return `${hostPath}${path.slice(root.length)}`;
  }
  return path;
}

/** Sets the variables the agent reads, as the runtime sets them for a container it starts. */
export function applyIdentity(env: NodeJS.ProcessEnv, identity: PoolIdentity): void {
  env.CONTAINER_ID = identity.containerId;
  env.WORKSPACE_PATH = localPath(identity.workspacePath, env[LOCAL_MOUNTS_VARIABLE]);
  env.BERTH_GENERATION = String(identity.generation);
  env.BERTH_INPUT_QUEUE_URL = identity.inputQueueUrl;
  env.BERTH_OUTPUT_QUEUE_URL = identity.outputQueueUrl;
  if (identity.repoUrl !== undefined) env.BERTH_REPO_URL = identity.repoUrl;
  delete env[POOL_CONTROL_QUEUE_VARIABLE];
}

/**
 * Long-polls the control queue until an identity arrives (the only calls it makes on that
 * queue are ReceiveMessage and DeleteMessage); undefined when the queue is gone
 * (the pool retired this member) or `signal` aborts (a stop before any claim).
 */
export async function awaitIdentity(options: {
  sqs: SQSClient;
  queueUrl: string;
  logger: Logger;
  signal: AbortSignal;
}): Promise<PoolIdentity | undefined> {
  const { sqs, queueUrl, logger, signal } = options;
  let pause = 250;
  while (!signal.aborted) {
    try {
      const { Messages = [] } = await sqs.send(
        new ReceiveMessageCommand({
          QueueUrl: queueUrl,
          MaxNumberOfMessages: 1,
          WaitTimeSeconds: 20,
        }),
        { abortSignal: signal },
      );
      pause = 250;
      for (const message of Messages) {
        const identity = parseIdentity(message.Body);
        await sqs
          .send(
            new DeleteMessageCommand({ QueueUrl: queueUrl, ReceiptHandle: message.ReceiptHandle }),
          )
          .catch(() => undefined);
        if (!identity) {
          logger.warn({ messageId: message.MessageId }, 'not an identity; dropped');
          continue;
        }
        // The queue stays: the agent's role may not delete queues (it could delete any
        // container's), so the reaper's sweep deletes it once the member is handed over.
        return identity;
      }
    } catch (error) {
      if (signal.aborted) return undefined;
      if (isMissingQueue(error)) {
        logger.info('control queue gone: this pool member was retired');
        return undefined;
      }
      logger.warn({ err: error, retryInMs: pause }, 'receiving from the control queue failed');
      await new Promise((resolve) => setTimeout(resolve, pause));
      pause = Math.min(pause * 2, 5000);
    }
  }
  return undefined;
}
