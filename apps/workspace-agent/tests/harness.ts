/**
 * Test harness: real git repositories in temp directories, real queues on fauxqs, and the agent
 * as a real child process talking over IPC.
 */
import {
  CreateQueueCommand,
  DeleteMessageCommand,
  GetQueueAttributesCommand,
  ReceiveMessageCommand,
  SendMessageCommand,
  SQSClient,
} from '@aws-sdk/client-sqs';
import { afterAll, afterEach, beforeEach } from '@jest/globals';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);

export const AGENT_MAIN = fileURLToPath(new URL('../src/main.ts', import.meta.url));

export async function git(cwd: string, ...args: string[]): Promise<string> {
  const { stdout } = await run('git', args, {
    cwd,
    env: {
      ...process.env,
      GIT_AUTHOR_NAME: 'test',
      GIT_AUTHOR_EMAIL: 'test@localhost',
      GIT_COMMITTER_NAME: 'test',
      GIT_COMMITTER_EMAIL: 'test@localhost',
    },
  });
  return stdout;
}

export async function tempDir(prefix: string): Promise<string> {
  return mkdtemp(join(tmpdir(), `berth-agent-${prefix}-`));
}

export async function removeDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
}

/** A bare repository with one commit (README.md) on `main`, like a project's remote. */
export async function createBareRepo(root: string): Promise<string> {
  const bare = join(root, 'project.git');
  await git(root, 'init', '--quiet', '--bare', '--initial-branch=main', bare);
  const seed = join(root, 'seed');
  await git(root, 'clone', '--quiet', bare, seed);
  await writeFile(join(seed, 'README.md'), '# project\n');
  await git(seed, 'add', 'README.md');
  await git(seed, 'commit', '--quiet', '-m', 'initial commit');
  await git(seed, 'push', '--quiet', 'origin', 'HEAD:refs/heads/main');
  return bare;
}

/** A file on a branch of the bare repository, or undefined when it is not there. */
export async function showInBare(
  bare: string,
  branch: string,
  file: string,
): Promise<string | undefined> {
  try {
    return await git(bare, 'show', `${branch}:${file}`);
  } catch {
    return undefined;
  }
}

export function sqsClient(): SQSClient {
  return new SQSClient({ useQueueUrlAsEndpoint: false });
}

export interface Queues {
  input: string;
  output: string;
}

export async function createQueues(sqs: SQSClient): Promise<Queues> {
  const id = randomUUID().slice(0, 8);
  const create = async (name: string): Promise<string> => {
    const { QueueUrl } = await sqs.send(new CreateQueueCommand({ QueueName: name }));
    if (!QueueUrl) throw new Error(`no URL for queue ${name}`);
    return QueueUrl;
  };
  return { input: await create(`agent-in-${id}`), output: await create(`agent-out-${id}`) };
}

export async function sendInput(sqs: SQSClient, queueUrl: string, body: unknown): Promise<void> {
  await sqs.send(
    new SendMessageCommand({
      QueueUrl: queueUrl,
      MessageBody: typeof body === 'string' ? body : JSON.stringify(body),
    }),
  );
}

export interface Output {
  sessionId?: string;
  threadId?: string;
  text: string;
  exitCode: number;
  checkpoint?: string | null;
}

/** Reads (and deletes) output messages until `count` have arrived; throws after `timeoutMs`. */
export async function receiveOutputs(
  sqs: SQSClient,
  queueUrl: string,
  count: number,
  timeoutMs = 20_000,
): Promise<Output[]> {
  const outputs: Output[] = [];
  const deadline = Date.now() + timeoutMs;
  while (outputs.length < count) {
    if (Date.now() > deadline) {
      throw new Error(
        `expected ${count} output messages, got ${outputs.length}: ${JSON.stringify(outputs)}`,
      );
    }
    const { Messages = [] } = await sqs.send(
      new ReceiveMessageCommand({
        QueueUrl: queueUrl,
        MaxNumberOfMessages: 10,
        WaitTimeSeconds: 1,
      }),
    );
    for (const message of Messages) {
      outputs.push(JSON.parse(message.Body ?? 'null') as Output);
      await sqs.send(
        new DeleteMessageCommand({ QueueUrl: queueUrl, ReceiptHandle: message.ReceiptHandle }),
      );
    }
  }
  return outputs;
}

/** Messages still on a queue, visible or being handled. */
export async function messagesOnQueue(sqs: SQSClient, queueUrl: string): Promise<number> {
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

/** Polls `condition` until it holds; for effects no event announces (files, queue counts). */
export async function eventually<T>(
  what: string,
  condition: () => T | undefined | false | Promise<T | undefined | false>,
  timeoutMs = 15_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await condition();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await delay(50);
  }
}

export const fileExists = (path: string): boolean => existsSync(path);

export interface AgentNoticeMessage {
  type: string;
  reason?: string;
}

export interface AgentProcess {
  child: ChildProcess;
  notices: AgentNoticeMessage[];
  /** JSON log lines from stdout. */
  logs: Record<string, unknown>[];
  stderr: () => string;
  ready: Promise<void>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGTERM, then the exit. */
  stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export interface AgentEnvInput {
  workspacePath: string;
  repoUrl: string;
  queues: Queues;
  generation?: number;
  containerId?: string;
  workloadCommand?: string;
  shutdownGrace?: string;
  extra?: Record<string, string>;
}

export function startAgent(input: AgentEnvInput): AgentProcess {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    CONTAINER_ID: input.containerId ?? 'acme.website.john',
    WORKSPACE_PATH: input.workspacePath,
    BERTH_REPO_URL: input.repoUrl,
    BERTH_GENERATION: String(input.generation ?? 1),
    BERTH_INPUT_QUEUE_URL: input.queues.input,
    BERTH_OUTPUT_QUEUE_URL: input.queues.output,
    BERTH_SHUTDOWN_GRACE: input.shutdownGrace ?? '10s',
    ...input.extra,
  };
  delete env.BERTH_WORKLOAD_COMMAND;
  if (input.workloadCommand !== undefined) env.BERTH_WORKLOAD_COMMAND = input.workloadCommand;

  const child = spawn(process.execPath, [AGENT_MAIN], {
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    env,
  });
  const notices: AgentNoticeMessage[] = [];
  const logs: Record<string, unknown>[] = [];
  let stderr = '';
  let pending = '';
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    pending += chunk;
    const lines = pending.split('\n');
    pending = lines.pop() ?? '';
    for (const line of lines) {
      if (line.trim() === '') continue;
      try {
        logs.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        logs.push({ unparsed: line });
      }
    }
  });
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });
  const ready = new Promise<void>((resolve, reject) => {
    child.on('message', (message: AgentNoticeMessage) => {
      notices.push(message);
      if (message.type === 'ready') resolve();
    });
    void exited.then(({ code, signal }) =>
      reject(
        new Error(
          `agent exited before ready (code ${code}, signal ${signal}); logs: ${JSON.stringify(logs)}; stderr: ${stderr}`,
        ),
      ),
    );
  });
  // Rejections of `ready` after the agent was ready are expected and irrelevant.
  ready.catch(() => undefined);
  return {
    child,
    notices,
    logs,
    stderr: () => stderr,
    ready,
    exited,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      return exited;
    },
  };
}

/**
 * Kills an agent a failed test left running, so Jest can exit, and what it started in process
 * groups of its own (workloads, the dev server), which its SIGKILL does not reach: the local
 * runtime ends those with the agent; here the harness stands in for it.
 */
export async function killAgent(agent: AgentProcess | undefined): Promise<void> {
  // An agent that exited by itself ended its groups; only a killed one leaves them behind
  // (and a group id long dead may belong to another process by now).
  if (!agent || agent.child.exitCode !== null || agent.child.signalCode !== null) return;
  agent.child.kill('SIGKILL');
  await agent.exited;
  for (const notice of agent.notices) {
    const pgid = (notice as { pgid?: unknown }).pgid;
    if (notice.type !== 'workload' || typeof pgid !== 'number' || pgid <= 1) continue;
    try {
      process.kill(-pgid, 'SIGKILL');
    } catch {
      // Gone already.
    }
  }
}

/** What a test of the agent works with: a fresh bare repository and queues per test. */
export interface AgentFixture {
  readonly sqs: SQSClient;
  readonly root: string;
  readonly bare: string;
  /** This test's queues; a test that starts a new generation gives it queues of its own. */
  queues: Queues;
  /** Starts an agent on this test's repository and queues; it is killed after the test. */
  agent(input: Omit<AgentEnvInput, 'repoUrl' | 'queues'> & Partial<AgentEnvInput>): AgentProcess;
}

/**
 * Registers the hooks every agent test file needs (a repository and queues per test, agents
 * killed and the directory removed after it) and returns the current test's fixture.
 */
export function useAgentFixture(prefix: string): AgentFixture {
  let sqs: SQSClient | undefined;
  let root = '';
  let bare = '';
  let queues: Queues | undefined;
  const agents: AgentProcess[] = [];
  beforeEach(async () => {
    sqs ??= sqsClient();
    root = await tempDir(prefix);
    bare = await createBareRepo(root);
    queues = await createQueues(sqs);
  });
  afterEach(async () => {
    await Promise.all(agents.splice(0).map(killAgent));
    await removeDir(root);
  });
  afterAll(() => {
    sqs?.destroy();
  });
  const current = <T>(value: T | undefined, name: string): T => {
    if (value === undefined) throw new Error(`the agent fixture's ${name} is used outside a test`);
    return value;
  };
  return {
    get sqs() {
      return current(sqs, 'sqs');
    },
    get root() {
      return root;
    },
    get bare() {
      return bare;
    },
    get queues() {
      return current(queues, 'queues');
    },
    set queues(next: Queues) {
      queues = next;
    },
    agent(input) {
      const started = startAgent({ repoUrl: bare, queues: current(queues, 'queues'), ...input });
      agents.push(started);
      return started;
    },
  };
}
