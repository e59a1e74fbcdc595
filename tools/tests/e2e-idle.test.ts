/**
 * Issue 4 end to end on the local stack: idle containers are saved to git and stopped on
 * time, busy ones never are, and the next generation finds every saved file.
 */
import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  threadBranch,
  type BerthEvent,
  type ContainerJson,
  type SessionRecord,
} from '@berth/domain';
import type { RunningStack } from '../src/stack/harness.ts';
import {
  agentPidOf,
  bareRepoOf,
  connect,
  eventually,
  fileOnBranch,
  http,
  isProcessAlive,
  queueDepth,
  receiveAnswer,
  sendToContainer,
  startStackRetrying,
  type StackClients,
} from './stack-helpers.ts';

const IDLE_TIMEOUT_MS = 3000;
/** The contract's bound between the idle timeout and the start of the stop. */
const STOP_BOUND_MS = 5000;
const STACK_ENV = {
  BERTH_IDLE_TIMEOUT: '3s',
  BERTH_REAPER_TICK: '500ms',
  BERTH_SWEEP_INTERVAL: '5s',
  BERTH_SHUTDOWN_GRACE: '10s',
};

interface Key {
  clientId: string;
  projectId: string;
  userId: string;
}

const containerIdOf = (key: Key): string => `${key.clientId}.${key.projectId}.${key.userId}`;
const containerOf = (event: BerthEvent): ContainerJson => event.payload.container as ContainerJson;

/** Assigns a session and waits until its thread's worktree exists in the container. */
async function assignSession(
  clients: StackClients,
  key: Key,
  sessionId: string,
  threadId: string,
): Promise<
  SessionRecord & { worktreePath: string; inputQueueUrl: string; outputQueueUrl: string }
> {
  await clients.commands.sendCommand('session.assign', { ...key, sessionId, threadId });
  await clients.events.waitFor({ type: 'session.assigned', sessionId }, 90_000);
  const session = await clients.store.getSession(sessionId);
  if (!session?.worktreePath || !session.inputQueueUrl || !session.outputQueueUrl) {
    throw new Error(`session ${sessionId} has no worktree or queues: ${JSON.stringify(session)}`);
  }
  const { worktreePath, inputQueueUrl, outputQueueUrl } = session;
  // The session service asks the agent to open the thread before it announces the session;
  // once that message is gone from the input queue, `git worktree add` has finished (its
  // `.git` file alone appears before the checkout is complete).
  await eventually(
    `the worktree ${worktreePath}`,
    async () =>
      existsSync(join(worktreePath, '.git')) && (await queueDepth(clients.sqs, inputQueueUrl)) === 0
        ? true
        : undefined,
    90_000,
  );
  return { ...session, worktreePath, inputQueueUrl, outputQueueUrl };
}

async function release(clients: StackClients, sessionId: string): Promise<void> {
  await clients.commands.sendCommand('session.release', { sessionId });
  await clients.events.waitFor({ type: 'session.released', sessionId }, 30_000);
}

/**
 * Has the workload append a line to CHAT.md (a checkpoint, pushed at once), then, once that
 * checkpoint is announced, writes a file into the worktree: work since the last checkpoint,
 * which only the stop's save (or the thread's close) can push.
 */
async function doSomeWork(
  clients: StackClients,
  session: Awaited<ReturnType<typeof assignSession>>,
  file: string,
  content: string,
  text: string,
): Promise<void> {
  await sendToContainer(clients.sqs, session.inputQueueUrl, {
    sessionId: session.sessionId,
    threadId: session.threadId ?? '',
    text,
  });
  const answer = await receiveAnswer(
    clients.sqs,
    session.outputQueueUrl,
    (a) => a.sessionId === session.sessionId,
    60_000,
  );
  expect(answer).toMatchObject({ text, exitCode: 0 });
  await clients.events.waitFor(
    { type: 'session.checkpointed', sessionId: session.sessionId },
    60_000,
  );
  writeFileSync(join(session.worktreePath, file), content);
}

/**
 * Checks the idle stop's timing from the records: it began no earlier than the idle timeout
 * and no later than the contract's bound after it.
 */
async function expectStoppedOnTime(clients: StackClients, terminating: BerthEvent): Promise<void> {
  const idleSince = containerOf(terminating).idleSince;
  expect(idleSince).toEqual(expect.any(String));
  const record = await clients.store.getContainer(terminating.containerId ?? '');
  expect(record?.terminatingSince).toEqual(expect.any(String));
  const due = Date.parse(idleSince ?? '') + IDLE_TIMEOUT_MS;
  const late = Date.parse(record?.terminatingSince ?? '') - due;
  expect(late).toBeGreaterThanOrEqual(0);
  expect(late).toBeLessThanOrEqual(STOP_BOUND_MS);
}

describe('idle shutdown on the local stack (default workload)', () => {
  let stack: RunningStack;
  let clients: StackClients;

  beforeAll(async () => {
    stack = await startStackRetrying(STACK_ENV);
    clients = await connect(stack);
  }, 180_000);

  afterAll(async () => {
    await clients?.close();
    await stack?.stop();
  }, 120_000);

  it("saves a released session's work to its thread branch, stops the idle container, and restores it in generation 2", async () => {
    // Prepare
    const key = { clientId: 'acme', projectId: 'notes', userId: 'ann' };
    const containerId = containerIdOf(key);
    const first = await assignSession(clients, key, 'ann-s1', 'plan');
    await doSomeWork(clients, first, 'notes.txt', 'remember the milk\n', 'hello from ann');

    // Act
    await release(clients, first.sessionId);
    const terminating = await clients.events.waitFor(
      { type: 'container.terminating', containerId },
      30_000,
    );
    const stopped = await clients.events.waitFor(
      { type: 'container.stopped', containerId },
      30_000,
    );

    // Assess: stopped for being idle, on time, and everything is on the thread's branch
    expect(containerOf(terminating).stopReason).toBe('idle');
    expect(containerOf(stopped)).toMatchObject({
      status: 'stopped',
      stopReason: 'idle',
      generation: 1,
    });
    await expectStoppedOnTime(clients, terminating);
    const bare = bareRepoOf(stack, key.clientId, key.projectId);
    expect(fileOnBranch(bare, 'thread/ann/plan', 'notes.txt')).toBe('remember the milk\n');
    expect(fileOnBranch(bare, 'thread/ann/plan', 'CHAT.md')).toContain('hello from ann');

    // Act: the next session of the same user and thread. The workspace directory is removed
    // first, as a new Fargate task starts with empty storage: what it finds came from git.
    const workspacePath = containerOf(stopped).workspacePath ?? '';
    expect(workspacePath).not.toBe('');
    rmSync(workspacePath, { recursive: true, force: true });
    const second = await assignSession(clients, key, 'ann-s2', 'plan');

    // Assess
    const container = await clients.store.getContainer(containerId);
    expect(container).toMatchObject({ generation: 2 });
    expect(second.generation).toBe(2);
    expect(readFileSync(join(second.worktreePath, 'notes.txt'), 'utf8')).toBe(
      'remember the milk\n',
    );
    expect(readFileSync(join(second.worktreePath, 'CHAT.md'), 'utf8')).toContain('hello from ann');
    await release(clients, second.sessionId);
  }, 240_000);

  it('stops idle containers no earlier than BERTH_IDLE_TIMEOUT and within 5 s of it', async () => {
    // Prepare: containers with no session are idle from the moment they run
    const keys = ['ivy', 'jim', 'kim'].map((userId) => ({
      clientId: 'acme',
      projectId: 'timing',
      userId,
    }));

    // Act
    const discovered = await Promise.all(
      keys.map((key) =>
        http<{ container: ContainerJson }>(stack, 'POST', '/v1/containers/discover?wait=60', {
          body: key,
        }),
      ),
    );
    const terminating = await Promise.all(
      keys.map((key) =>
        clients.events.waitFor(
          { type: 'container.terminating', containerId: containerIdOf(key) },
          60_000,
        ),
      ),
    );
    await Promise.all(
      keys.map((key) =>
        clients.events.waitFor(
          { type: 'container.stopped', containerId: containerIdOf(key) },
          60_000,
        ),
      ),
    );

    // Assess
    for (const answer of discovered) expect(answer.body.container.status).toBe('running');
    for (const event of terminating) {
      expect(containerOf(event).stopReason).toBe('idle');
      await expectStoppedOnTime(clients, event);
    }
  }, 180_000);

  it('never stops a container while a session is active, and says why', async () => {
    // Prepare
    const key = { clientId: 'acme', projectId: 'busy', userId: 'bob' };
    const containerId = containerIdOf(key);
    const session = await assignSession(clients, key, 'bob-s1', 'chat');
    await clients.events.waitFor({ type: 'container.running', containerId }, 60_000);

    // Act: well past the idle timeout and the bound within which an idle container stops
    const stop = clients.events
      .waitFor(
        (event) =>
          event.containerId === containerId &&
          /^container\.(terminating|stopped|failed)$/.test(event.type),
        IDLE_TIMEOUT_MS + STOP_BOUND_MS + 2000,
      )
      .then(
        (event) => event.type,
        () => undefined,
      );

    // Assess
    expect(await stop).toBeUndefined();
    const answer = await http<{ container: ContainerJson }>(
      stack,
      'GET',
      `/v1/containers/${containerId}`,
    );
    expect(answer.body.container).toMatchObject({
      status: 'running',
      idleStopAt: null,
      sessions: [session.sessionId],
    });
    expect(answer.body.container.keptAliveBy).toContain('sessions');
    await release(clients, session.sessionId);
  }, 180_000);

  it('saves the work of an agent that receives SIGTERM', async () => {
    // Prepare
    const key = { clientId: 'acme', projectId: 'sigterm', userId: 'sam' };
    const containerId = containerIdOf(key);
    const session = await assignSession(clients, key, 'sam-s1', 'draft');
    await clients.events.waitFor({ type: 'container.running', containerId }, 60_000);
    await doSomeWork(clients, session, 'draft.txt', 'first draft\n', 'signal me');
    const container = await clients.store.getContainer(containerId);
    const pid = agentPidOf(stack, container?.taskArn ?? '', containerId);
    expect(pid).toEqual(expect.any(Number));

    // Act
    process.kill(pid ?? 0, 'SIGTERM');
    const ended = await clients.events.waitFor(
      (event) =>
        event.containerId === containerId && /^container\.(stopped|failed)$/.test(event.type),
      60_000,
      'the container to stop',
    );

    // Assess: the work is on the thread's branch and the record no longer claims it runs
    const bare = bareRepoOf(stack, key.clientId, key.projectId);
    expect(fileOnBranch(bare, 'thread/sam/draft', 'draft.txt')).toBe('first draft\n');
    expect(fileOnBranch(bare, 'thread/sam/draft', 'CHAT.md')).toContain('signal me');
    expect(isProcessAlive(pid ?? 0)).toBe(false);
    // A clean save is no crash: stopped (not failed), and the reason says it was stopped from outside.
    expect(containerOf(ended)).toMatchObject({ status: 'stopped' });
    expect(containerOf(ended).stopReason).toMatch(/^manual:/);
    const released = await clients.events.waitFor(
      { type: 'session.released', sessionId: session.sessionId },
      30_000,
    );
    expect(String(released.payload.reason)).toMatch(/manual/);
  }, 180_000);

  it('names a failed save after a SIGTERM: save_failed, not a crash, and the workspace is kept', async () => {
    // Prepare
    const key = { clientId: 'acme', projectId: 'cutoff', userId: 'cy' };
    const containerId = containerIdOf(key);
    const session = await assignSession(clients, key, 'cy-s1', 'memo');
    await clients.events.waitFor({ type: 'container.running', containerId }, 60_000);
    await doSomeWork(clients, session, 'memo.txt', 'do not lose me\n', 'still here');
    const container = await clients.store.getContainer(containerId);
    const pid = agentPidOf(stack, container?.taskArn ?? '', containerId);
    expect(pid).toEqual(expect.any(Number));
    const bare = bareRepoOf(stack, key.clientId, key.projectId);
    renameSync(bare, `${bare}.away`);

    // Act
    process.kill(pid ?? 0, 'SIGTERM');
    const ended = await clients.events.waitFor(
      (event) =>
        event.containerId === containerId && /^container\.(stopped|failed)$/.test(event.type),
      60_000,
      'the container to stop',
    );
    renameSync(`${bare}.away`, bare);

    // Assess
    expect(containerOf(ended)).toMatchObject({ status: 'stopped' });
    expect(containerOf(ended).stopReason).toMatch(/^save_failed:/);
    expect(readFileSync(join(session.worktreePath, 'memo.txt'), 'utf8')).toBe('do not lose me\n');
    expect(fileOnBranch(bare, 'thread/cy/memo', 'memo.txt')).toBeUndefined();
  }, 180_000);

  it('keeps the workspace when the push fails, says save_failed, and pushes it first in the next generation', async () => {
    // Prepare
    const key = { clientId: 'acme', projectId: 'fragile', userId: 'fay' };
    const containerId = containerIdOf(key);
    const session = await assignSession(clients, key, 'fay-s1', 'essay');
    await doSomeWork(clients, session, 'essay.txt', 'chapter one\n', 'keep this');
    const bare = bareRepoOf(stack, key.clientId, key.projectId);
    const away = `${bare}.away`;
    renameSync(bare, away);

    // Act
    await release(clients, session.sessionId);
    const stopped = await clients.events.waitFor(
      { type: 'container.stopped', containerId },
      60_000,
    );

    // Assess
    expect(containerOf(stopped).stopReason).toMatch(/^save_failed/);
    expect(readFileSync(join(session.worktreePath, 'essay.txt'), 'utf8')).toBe('chapter one\n');
    expect(readFileSync(join(session.worktreePath, 'CHAT.md'), 'utf8')).toContain('keep this');

    // Act: the remote is back; the next generation starts
    renameSync(away, bare);
    expect(fileOnBranch(bare, threadBranch('fay', 'essay'), 'essay.txt')).toBeUndefined();
    const next = await assignSession(clients, key, 'fay-s2', 'other');
    const running = await clients.events.waitFor(
      (event) =>
        event.type === 'container.running' &&
        event.containerId === containerId &&
        containerOf(event).generation === 2,
      60_000,
      'generation 2 running',
    );

    // Assess: pushed while preparing, before the container reported it runs
    expect(containerOf(running).generation).toBe(2);
    expect(fileOnBranch(bare, 'thread/fay/essay', 'essay.txt')).toBe('chapter one\n');
    expect(fileOnBranch(bare, 'thread/fay/essay', 'CHAT.md')).toContain('keep this');
    await release(clients, next.sessionId);
  }, 240_000);
});

describe('idle shutdown on the local stack (a slow workload)', () => {
  let stack: RunningStack;
  let clients: StackClients;

  beforeAll(async () => {
    stack = await startStackRetrying({ ...STACK_ENV, BERTH_WORKLOAD_COMMAND: 'sleep 15; cat' });
    clients = await connect(stack);
  }, 180_000);

  afterAll(async () => {
    await clients?.close();
    await stack?.stop();
  }, 120_000);

  it('does not stop an idle container while a message is in flight, and stops it once the message is done', async () => {
    // Prepare
    const key = { clientId: 'acme', projectId: 'slow', userId: 'sue' };
    const containerId = containerIdOf(key);
    const session = await assignSession(clients, key, 'sue-s1', 'long');
    await clients.events.waitFor({ type: 'container.running', containerId }, 60_000);

    // Act: a message that takes 15 s, and the session leaves while it runs
    await sendToContainer(clients.sqs, session.inputQueueUrl, {
      sessionId: session.sessionId,
      threadId: 'long',
      text: 'take your time',
    });
    await eventually('the message to be taken', async () => {
      const answer = await http<{ container: ContainerJson }>(
        stack,
        'GET',
        `/v1/containers/${containerId}`,
      );
      return answer.body.container.keptAliveBy.includes('messages_in_flight') ? true : undefined;
    });
    await release(clients, session.sessionId);
    const releasedAt = Date.now();
    const earlyStop = await clients.events
      .waitFor({ type: 'container.terminating', containerId }, IDLE_TIMEOUT_MS + 2000)
      .then(
        () => true,
        () => false,
      );

    // Assess: past the idle timeout it still runs, and says why
    expect(earlyStop).toBe(false);
    const busy = await http<{ container: ContainerJson }>(
      stack,
      'GET',
      `/v1/containers/${containerId}`,
    );
    const checkedAt = Date.now();
    expect(busy.body.container).toMatchObject({
      status: 'running',
      sessionCount: 0,
      idleStopAt: null,
    });
    expect(busy.body.container.keptAliveBy).toEqual(['messages_in_flight']);
    expect(Date.now() - Date.parse(busy.body.container.idleSince ?? '')).toBeGreaterThan(
      IDLE_TIMEOUT_MS,
    );

    // Assess: the answer arrives, then the container is stopped
    const answer = await receiveAnswer(
      clients.sqs,
      session.outputQueueUrl,
      (a) => a.sessionId === session.sessionId,
      60_000,
    );
    expect(answer).toMatchObject({ text: 'take your time', exitCode: 0 });
    // The look above was taken while the message was still being handled.
    expect(answer.sentAt).toBeGreaterThan(checkedAt);
    const terminating = await clients.events.waitFor(
      { type: 'container.terminating', containerId },
      30_000,
    );
    expect(containerOf(terminating).stopReason).toBe('idle');
    expect(Date.parse(terminating.occurredAt) - releasedAt).toBeGreaterThan(IDLE_TIMEOUT_MS);
    expect(Date.parse(terminating.occurredAt)).toBeGreaterThanOrEqual(
      answer.sentAt ?? Number.POSITIVE_INFINITY,
    );
    const stopped = await clients.events.waitFor(
      { type: 'container.stopped', containerId },
      30_000,
    );
    expect(containerOf(stopped).stopReason).toBe('idle');
  }, 240_000);
});
