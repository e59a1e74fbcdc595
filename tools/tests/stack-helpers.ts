import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { SNSClient } from '@aws-sdk/client-sns';
import {
  DeleteMessageCommand,
  GetQueueAttributesCommand,
  ReceiveMessageCommand,
  SendMessageCommand,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import { loadConfig } from '@berth/domain';
import { DynamoStateStore } from '@berth/dynamodb';
import { EcsRuntime, createEcsClient } from '@berth/ecs';
import {
  CommandSender,
  EventSubscription,
  createSnsClient,
  createSqsClient,
  localLifecycleTopicArn,
  resolveMessaging,
  type MessagingResources,
} from '@berth/messaging';
import { mintToken } from '@berth/platform';
import { BareRepositories } from '@berth/platform/local-repos';
import type { ContainerJson, TaskInfo } from '@berth/domain';
import { attachStack, startStack, type RunningStack } from '../src/stack/harness.ts';

export interface HttpAnswer<T = Record<string, unknown>> {
  status: number;
  body: T;
}

export async function http<T = Record<string, unknown>>(
  stack: RunningStack,
  method: string,
  path: string,
  options: { token?: string | null; body?: unknown } = {},
): Promise<HttpAnswer<T>> {
  const token = options.token === undefined ? stack.adminToken : options.token;
  const response = await fetch(`${stack.url}${path}`, {
    method,
    headers: {
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...(options.body !== undefined ? { 'content-type': 'application/json' } : {}),
    },
    ...(options.body !== undefined ? { body: JSON.stringify(options.body) } : {}),
  });
  const text = await response.text();
  return { status: response.status, body: (text ? JSON.parse(text) : {}) as T };
}

export function tokenFor(
  stack: RunningStack,
  client: string,
  user: string,
  role: 'user' | 'service' | 'admin' = 'user',
): string {
  const secret = readFileSync(join(stack.dataDir, 'auth-secret'), 'utf8').trim();
  return mintToken(secret, { client, sub: user, role });
}

/** The local runtime's own view of the tasks, through the same ECS API the services use. */
export function runtimeOf(stack: RunningStack): EcsRuntime {
  useStackAws(stack);
  return new EcsRuntime({
    client: createEcsClient({ endpoint: `http://127.0.0.1:${stack.env.BERTH_RUNTIME_PORT}` }),
    cluster: 'berth-local',
    taskDefinition: 'berth-workspace',
    containerName: 'workspace',
    subnets: [],
    securityGroups: [],
    workspaceRoot: join(stack.dataDir, 'workspaces'),
    launchType: undefined,
  });
}

/** Polls until `check` returns a value (not undefined) or the deadline passes. */
export async function eventually<T>(
  what: string,
  check: () => Promise<T | undefined>,
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (error) {
      last = error;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(
    `timed out waiting for ${what}${last instanceof Error ? `: ${last.message}` : ''}`,
  );
}

/** Lets the AWS SDK clients of this test process reach the stack's engines. */
export function useStackAws(stack: RunningStack): void {
  for (const [name, value] of Object.entries(stack.env))
    if (name.startsWith('AWS_')) process.env[name] = value;
}

/** What a test needs to talk to the stack the way services do: commands, events, the store, queues. */
export interface StackClients {
  sqs: SQSClient;
  sns: SNSClient;
  dynamodb: DynamoDBClient;
  messaging: MessagingResources;
  commands: CommandSender;
  events: EventSubscription;
  store: DynamoStateStore;
  close(): Promise<void>;
}

export async function connect(stack: RunningStack): Promise<StackClients> {
  useStackAws(stack);
  const sqs = createSqsClient();
  const sns = createSnsClient();
  const dynamodb = new DynamoDBClient({});
  const messaging = await resolveMessaging({
    sqs,
    sns,
    topicArn: await localLifecycleTopicArn(sns, loadConfig(process.env).lifecycleTopicArn),
  });
  const events = await EventSubscription.open({ sqs, sns, topicArn: messaging.topicArn });
  return {
    sqs,
    sns,
    dynamodb,
    messaging,
    commands: new CommandSender({ sqs, queueUrl: messaging.lifecycleCommandsUrl }),
    events,
    store: new DynamoStateStore({
      client: dynamodb,
      containerTable: 'berth-containers',
      sessionTable: 'berth-sessions',
    }),
    async close() {
      await events.close().catch(() => undefined);
      sqs.destroy();
      sns.destroy();
      dynamodb.destroy();
    },
  };
}

/** Where a path inside a task's volume (WORKSPACE_PATH, a worktree) is on this machine. */
export function onHost(stack: RunningStack, path: string): string {
  for (const { containerPath, hostPath } of stack.mounts) {
    if (path === containerPath) return hostPath;
    if (path.startsWith(`${containerPath}/`))
      return `${hostPath}${path.slice(containerPath.length)}`;
  }
  return path;
}

/** Where the stack's runtime puts workspaces, as the services see the path. */
export function workspaceRootOf(stack: RunningStack): string {
  return stack.mounts[0]?.containerPath ?? join(stack.dataDir, 'workspaces');
}

/** `<data>/repos/<clientId>/<projectId>.git`, the local stack's bare repository of a project. */
export function bareRepoOf(stack: RunningStack, clientId: string, projectId: string): string {
  return join(stack.dataDir, 'repos', clientId, `${projectId}.git`);
}

/**
 * Makes the project's repository where the stack's containers clone it from, as a deployment's
 * repositories exist before anyone discovers a container of theirs. The local runtime makes it
 * when it starts a task for the project; a warm-pool member is started for no project, so in
 * the deploy rehearsal (`--pool`, agents cloning from the data directory) a miss it serves
 * would find none. Idempotent, the same initial commit as the local runtime's.
 */
export async function projectRepository(
  stack: RunningStack,
  key: { clientId: string; projectId: string },
): Promise<string> {
  const repos = new BareRepositories(join(stack.dataDir, 'repos'));
  return (await repos.ensure(key.clientId, key.projectId)).path;
}

/**
 * The runtime's tasks that are this container's: tagged with its containerId (a cold start)
 * or the task its record names (a warm-pool member it claimed, tagged with its slot only).
 */
export async function tasksOf(
  stack: RunningStack,
  container: Pick<ContainerJson, 'containerId' | 'taskArn'>,
): Promise<TaskInfo[]> {
  return (await runtimeOf(stack).listTasks()).filter(
    (task) =>
      task.containerId === container.containerId ||
      (container.taskArn !== null && task.taskArn === container.taskArn),
  );
}

export function git(args: string[]): string {
  return execFileSync('git', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** A file on a branch of a bare repository, or undefined when the branch or file is not there. */
export function fileOnBranch(bareRepo: string, branch: string, path: string): string | undefined {
  try {
    return git(['--git-dir', bareRepo, 'show', `${branch}:${path}`]);
  } catch {
    return undefined;
  }
}

/**
 * The pid of a task's agent process, from the local runtime's log line `task started`; checked
 * against the process's own environment so a reused pid is never signalled by mistake.
 */
export function agentPidOf(
  stack: RunningStack,
  taskArn: string,
  containerId: string,
): number | undefined {
  const log = readFileSync(join(stack.dataDir, 'logs', 'local-runtime.log'), 'utf8');
  for (const line of log.split('\n')) {
    if (!line.includes(taskArn) || !line.includes('task started')) continue;
    const entry = JSON.parse(line) as { taskArn?: string; pid?: number };
    if (entry.taskArn !== taskArn || entry.pid === undefined) continue;
    try {
      const environ = readFileSync(`/proc/${entry.pid}/environ`, 'utf8').split('\0');
      if (environ.includes(`CONTAINER_ID=${containerId}`)) return entry.pid;
    } catch {
      return undefined;
    }
  }
  return undefined;
}

export function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Sends `{sessionId, threadId, text}` to a container's input queue. */
export async function sendToContainer(
  sqs: SQSClient,
  inputQueueUrl: string,
  message: { sessionId: string; threadId: string; text: string },
): Promise<void> {
  await sqs.send(
    new SendMessageCommand({ QueueUrl: inputQueueUrl, MessageBody: JSON.stringify(message) }),
  );
}

export interface ContainerAnswer {
  sessionId?: string;
  threadId?: string;
  text: string;
  exitCode: number;
  /** When the agent sent it (SQS's SentTimestamp), in ms since the epoch. */
  sentAt?: number;
}

/** The next answer on a container's output queue that matches, deleted once read. */
export async function receiveAnswer(
  sqs: SQSClient,
  outputQueueUrl: string,
  matches: (answer: ContainerAnswer) => boolean,
  timeoutMs = 30_000,
): Promise<ContainerAnswer> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const waitSeconds = Math.max(1, Math.min(5, Math.floor((deadline - Date.now()) / 1000)));
    const { Messages = [] } = await sqs.send(
      new ReceiveMessageCommand({
        QueueUrl: outputQueueUrl,
        MaxNumberOfMessages: 10,
        WaitTimeSeconds: waitSeconds,
        MessageSystemAttributeNames: ['SentTimestamp'],
      }),
    );
    for (const message of Messages) {
      const sent = Number(message.Attributes?.SentTimestamp);
      const answer = {
        ...(JSON.parse(message.Body ?? '{}') as ContainerAnswer),
        ...(Number.isFinite(sent) ? { sentAt: sent } : {}),
      };
      if (message.ReceiptHandle) {
        await sqs.send(
          new DeleteMessageCommand({
            QueueUrl: outputQueueUrl,
            ReceiptHandle: message.ReceiptHandle,
          }),
        );
      }
      if (matches(answer)) return answer;
    }
  }
  throw new Error(`no matching answer on ${outputQueueUrl} within ${timeoutMs} ms`);
}

/** Messages on a queue that are waiting or being handled (the task event queue, for instance). */
export async function queueDepth(sqs: SQSClient, queueUrl: string): Promise<number> {
  const { Attributes = {} } = await sqs.send(
    new GetQueueAttributesCommand({
      QueueUrl: queueUrl,
      AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'],
    }),
  );
  return (
    Number(Attributes.ApproximateNumberOfMessages ?? 0) +
    Number(Attributes.ApproximateNumberOfMessagesNotVisible ?? 0)
  );
}

/**
 * `startStack`, tried a second time when the first start fails: on a shared 2-core machine a
 * free port can be taken between its discovery and its use, or an engine can miss its start
 * deadline. The first failure is printed, so a stack that never starts still shows why.
 */
export async function startStackRetrying(overrides: Record<string, string>): Promise<RunningStack> {
  // The deploy rehearsal (npm run rehearse) runs the suite against the stack it started.
  const running = process.env.BERTH_E2E_STACK;
  if (running) return attachStack(running);
  try {
    return await startStack(overrides);
  } catch (error) {
    console.error(
      `the stack did not start; trying once more: ${error instanceof Error ? error.message : String(error)}`,
    );
    return startStack(overrides);
  }
}

/** The stack of a test file (or describe block) and its clients, readable once its tests run. */
export interface SuiteStack {
  readonly stack: RunningStack;
  readonly clients: StackClients;
}

/**
 * A local stack for the tests of the file or describe block that calls it: started
 * (`startStackRetrying`) and connected before them, closed and stopped after them.
 */
export function stackForSuite(overrides: Record<string, string>): SuiteStack {
  let stack: RunningStack | undefined;
  let clients: StackClients | undefined;
  beforeAll(async () => {
    stack = await startStackRetrying(overrides);
    clients = await connect(stack);
  }, 180_000);
  afterAll(async () => {
    await clients?.close();
    await stack?.stop();
  }, 120_000);
  const started = <T>(value: T | undefined): T => {
    if (value === undefined) throw new Error('the suite stack is read before it started');
    return value;
  };
  return {
    get stack() {
      return started(stack);
    },
    get clients() {
      return started(clients);
    },
  };
}

/** A container as `GET /v1/containers/{id}` shows it. */
export async function containerOf(
  stack: RunningStack,
  containerId: string,
): Promise<ContainerJson> {
  return (await http<{ container: ContainerJson }>(stack, 'GET', `/v1/containers/${containerId}`))
    .body.container;
}
