import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { setTimeout as delay } from 'node:timers/promises';
import {
  CreateQueueCommand,
  DeleteMessageBatchCommand,
  ReceiveMessageCommand,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import {
  TaskStateChangeSchema,
  validator,
  type TaskSpec,
  type TaskStateChange,
} from '@berth/domain';
import { EcsRuntime, createEcsClient } from '@berth/ecs';
import { createSqsClient } from '@berth/messaging';
import { pino } from 'pino';
import { startLocalRuntime, type LocalRuntime } from '../src/index.ts';

export const FIXTURE_AGENT = fileURLToPath(new URL('./fixtures/agent.ts', import.meta.url));
export const GRACE_MS = 1000;

const checkEvent = validator<TaskStateChange>(TaskStateChangeSchema);

/** Everything that arrived on a task event queue, and a way to wait for what is expected. */
export class EventCollector {
  readonly received: TaskStateChange[] = [];
  readonly #sqs: SQSClient;
  readonly #queueUrl: string;

  constructor(sqs: SQSClient, queueUrl: string) {
    this.#sqs = sqs;
    this.#queueUrl = queueUrl;
  }

  /** Receives until an event matches (every event is checked against the contract's schema). */
  async waitFor(
    match: (event: TaskStateChange) => boolean,
    timeoutMs = 15_000,
  ): Promise<TaskStateChange> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.received.find(match);
      if (found) return found;
      if (Date.now() > deadline) {
        throw new Error(
          `no matching task event within ${timeoutMs} ms; got ${JSON.stringify(this.received.map((e) => e.detail))}`,
        );
      }
      const { Messages = [] } = await this.#sqs.send(
        new ReceiveMessageCommand({
          QueueUrl: this.#queueUrl,
          MaxNumberOfMessages: 10,
          WaitTimeSeconds: 1,
        }),
      );
      for (const message of Messages)
        this.received.push(checkEvent.parse(JSON.parse(message.Body ?? '')));
      if (Messages.length > 0) {
        await this.#sqs.send(
          new DeleteMessageBatchCommand({
            QueueUrl: this.#queueUrl,
            Entries: Messages.map((message, index) => ({
              Id: String(index),
              ReceiptHandle: message.ReceiptHandle,
            })),
          }),
        );
      }
    }
  }

  forTask(taskArn: string): TaskStateChange[] {
    return this.received.filter((event) => event.detail.taskArn === taskArn);
  }
}

export interface Harness {
  local: LocalRuntime;
  runtime: EcsRuntime;
  events: EventCollector;
  dataDir: string;
  queueUrl: string;
  close(): Promise<void>;
}

export async function createQueue(sqs: SQSClient, name: string): Promise<string> {
  const { QueueUrl } = await sqs.send(new CreateQueueCommand({ QueueName: name }));
  if (!QueueUrl) throw new Error(`queue ${name} has no URL`);
  return QueueUrl;
}

export function ecsRuntimeFor(endpoint: string, workspaceRoot: string): EcsRuntime {
  return new EcsRuntime({
    client: createEcsClient({ endpoint, maxAttempts: 3, baseDelayMs: 10 }),
    cluster: 'berth',
    taskDefinition: 'berth-workspace',
    containerName: 'workspace',
    subnets: [],
    securityGroups: [],
    workspaceRoot,
  });
}

/** The local runtime in this process on a free port, its own data directory and event queue. */
export async function startHarness(): Promise<Harness> {
  const dataDir = await mkdtemp(join(tmpdir(), 'berth-local-runtime-'));
  const sqs = createSqsClient();
  const queueUrl = await createQueue(sqs, `task-events-${randomUUID()}`);
  const local = await startLocalRuntime(
    {
      ...process.env,
      BERTH_DATA_DIR: dataDir,
      BERTH_RUNTIME_PORT: '0',
      BERTH_SHUTDOWN_GRACE: `${GRACE_MS}ms`,
      BERTH_AGENT_ENTRY: FIXTURE_AGENT,
      BERTH_TASK_EVENTS_QUEUE_URL: queueUrl,
    },
    { logger: pino({ level: process.env.BERTH_TEST_LOG_LEVEL ?? 'silent' }) },
  );
  return {
    local,
    runtime: ecsRuntimeFor(local.endpoint, join(dataDir, 'workspaces')),
    events: new EventCollector(sqs, queueUrl),
    dataDir,
    queueUrl,
    close: async () => {
      await local.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

let counter = 0;

/** A task spec for a fresh user (so every test has its own containerId). */
export function specFor(
  runtime: EcsRuntime,
  options: {
    clientId?: string;
    projectId?: string;
    userId?: string;
    generation?: number;
    environment?: Record<string, string>;
  } = {},
): TaskSpec {
  counter += 1;
  const key = {
    clientId: options.clientId ?? 'acme',
    projectId: options.projectId ?? 'website',
    userId: options.userId ?? `user-${counter}-${randomUUID().slice(0, 8)}`,
  };
  return {
    ...key,
    containerId: `${key.clientId}.${key.projectId}.${key.userId}`,
    generation: options.generation ?? 1,
    workspacePath: runtime.workspacePathFor(key),
    environment: options.environment ?? {},
  };
}

/** Polls a condition that has no event of its own to await (e.g. a process being gone). */
export async function eventually(
  condition: () => boolean | Promise<boolean>,
  timeoutMs = 10_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await delay(25);
  }
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
