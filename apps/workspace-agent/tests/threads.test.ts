/**
 * Threads that belong to their user (issue 15): branches `thread/<userId>/<threadId>`,
 * worktrees made on `thread.open` only, removed once saved when the thread is closed, and the
 * agent's `thread.ready` announcement on the lifecycle commands queue.
 */
import { describe, expect, it } from '@jest/globals';
import { existsSync } from 'node:fs';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  CreateQueueCommand,
  DeleteMessageCommand,
  ReceiveMessageCommand,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import { WORKTREES_DIR, threadBranch, worktreePathFor } from '@berth/domain';
import {
  createQueues,
  eventually,
  git,
  receiveOutputs,
  sendInput,
  showInBare,
  useAgentFixture,
} from './harness.ts';

const TIMEOUT = 90_000;
const fx = useAgentFixture('threads');

async function announcementsQueue(sqs: SQSClient): Promise<string> {
  const { QueueUrl } = await sqs.send(
    new CreateQueueCommand({ QueueName: `agent-announce-${Date.now().toString(36)}` }),
  );
  if (!QueueUrl) throw new Error('no announcements queue');
  return QueueUrl;
}

async function receiveCommands(
  sqs: SQSClient,
  queueUrl: string,
  count: number,
): Promise<{ type: string; commandId: string; payload: Record<string, unknown> }[]> {
  const found: { type: string; commandId: string; payload: Record<string, unknown> }[] = [];
  await eventually(
    `${count} announcements`,
    async () => {
      const { Messages = [] } = await sqs.send(
        new ReceiveMessageCommand({
          QueueUrl: queueUrl,
          MaxNumberOfMessages: 10,
          WaitTimeSeconds: 1,
        }),
      );
      for (const message of Messages) {
        found.push(JSON.parse(message.Body ?? '{}') as (typeof found)[number]);
        await sqs.send(
          new DeleteMessageCommand({ QueueUrl: queueUrl, ReceiptHandle: message.ReceiptHandle }),
        );
      }
      return found.length >= count;
    },
    30_000,
  );
  return found;
}

/** A branch pushed to the bare repository by another clone (a writer from before issue 15). */
async function pushBranch(branch: string, files: Record<string, string>): Promise<void> {
  const clone = join(fx.root, `elsewhere-${branch.replaceAll('/', '-')}`);
  await git(fx.root, 'clone', '--quiet', fx.bare, clone);
  await git(clone, 'checkout', '--quiet', '-b', branch);
  for (const [name, content] of Object.entries(files)) await writeFile(join(clone, name), content);
  await git(clone, 'add', '-A');
  await git(clone, '-c', 'user.name=t', '-c', 'user.email=t@t', 'commit', '--quiet', '-m', 'old');
  await git(clone, 'push', '--quiet', 'origin', branch);
}

async function threadDirs(workspace: string): Promise<string[]> {
  const dir = join(workspace, WORKTREES_DIR);
  return existsSync(dir) ? (await readdir(dir)).sort() : [];
}

describe('threads belong to their user', () => {
  it(
    'two users of one project each see only their own threads; an old project-wide branch is read once',
    async () => {
      // Prepare: a thread from before branches belonged to their user.
      await pushBranch('thread/legacy', { 'old.txt': 'from the old days\n' });
      const johnWorkspace = join(fx.root, 'john');
      const maryWorkspace = join(fx.root, 'mary');
      const maryQueues = await createQueues(fx.sqs);
      const john = fx.agent({ workspacePath: johnWorkspace });
      const mary = fx.agent({
        workspacePath: maryWorkspace,
        containerId: 'acme.website.mary',
        queues: maryQueues,
      });
      await Promise.all([john.ready, mary.ready]);

      // Act: both write to a thread with the same id; john continues the old thread.
      await sendInput(fx.sqs, fx.queues.input, { sessionId: 'j1', threadId: 'plan', text: 'john' });
      await sendInput(fx.sqs, maryQueues.input, {
        sessionId: 'm1',
        threadId: 'plan',
        text: 'mary',
      });
      await sendInput(fx.sqs, fx.queues.input, {
        sessionId: 'j2',
        threadId: 'legacy',
        text: 'more',
      });
      await receiveOutputs(fx.sqs, fx.queues.output, 2);
      await receiveOutputs(fx.sqs, maryQueues.output, 1);
      expect((await john.stop()).code).toBe(0);
      expect((await mary.stop()).code).toBe(0);

      // Assess: one branch per user, the old branch untouched, its content carried over.
      expect(await showInBare(fx.bare, threadBranch('john', 'plan'), 'CHAT.md')).toBe('john\n');
      expect(await showInBare(fx.bare, threadBranch('mary', 'plan'), 'CHAT.md')).toBe('mary\n');
      expect(await showInBare(fx.bare, threadBranch('john', 'legacy'), 'old.txt')).toBe(
        'from the old days\n',
      );
      expect(await showInBare(fx.bare, threadBranch('john', 'legacy'), 'CHAT.md')).toBe('more\n');
      expect(await showInBare(fx.bare, 'thread/legacy', 'CHAT.md')).toBeUndefined();
      expect(await threadDirs(maryWorkspace)).toEqual(['plan']);

      // A new generation of john's container checks out nothing at start, and only its own
      // thread when a session opens it.
      const fresh = join(fx.root, 'john-2');
      fx.queues = await createQueues(fx.sqs);
      const again = fx.agent({ workspacePath: fresh, generation: 2, queues: fx.queues });
      await again.ready;
      expect(await threadDirs(fresh)).toEqual([]);
      await sendInput(fx.sqs, fx.queues.input, {
        type: 'thread.open',
        threadId: 'plan',
        sessionId: 'j3',
      });
      const worktree = worktreePathFor(fresh, 'plan');
      await eventually("john's plan worktree", () => existsSync(join(worktree, 'CHAT.md')));
      expect(await readFile(join(worktree, 'CHAT.md'), 'utf8')).toBe('john\n');
      expect(await threadDirs(fresh)).toEqual(['plan']);
      expect((await again.stop()).code).toBe(0);
    },
    TIMEOUT,
  );

  it(
    'announces thread.ready with the worktree and its head once the worktree exists',
    async () => {
      const announce = await announcementsQueue(fx.sqs);
      const workspace = join(fx.root, 'workspace');
      const a = fx.agent({
        workspacePath: workspace,
        generation: 3,
        extra: { BERTH_AGENT_REPORTS_URL: announce },
      });
      await a.ready;

      await sendInput(fx.sqs, fx.queues.input, {
        type: 'thread.open',
        threadId: 'chat:7',
        sessionId: 'sess-7',
      });
      const [ready] = await receiveCommands(fx.sqs, announce, 1);

      const worktree = worktreePathFor(workspace, 'chat:7');
      expect(existsSync(join(worktree, '.git'))).toBe(true);
      expect(ready).toEqual({
        type: 'thread.ready',
        commandId: expect.stringMatching(/^agent-thread\.ready-[0-9a-f]{40}$/) as unknown as string,
        payload: {
          sessionId: 'sess-7',
          threadId: 'chat:7',
          containerId: 'acme.website.john',
          generation: 3,
          worktreePath: worktree,
          head: (await git(worktree, 'rev-parse', 'HEAD')).trim(),
        },
      });
      expect((await a.stop()).code).toBe(0);
    },
    TIMEOUT,
  );

  it(
    "removes a closed thread's worktree once saved, only when no session has it open, and keeps its branch",
    async () => {
      const workspace = join(fx.root, 'workspace');
      const a = fx.agent({ workspacePath: workspace });
      await a.ready;
      await sendInput(fx.sqs, fx.queues.input, {
        type: 'thread.open',
        threadId: 'doc',
        sessionId: 's1',
      });
      await sendInput(fx.sqs, fx.queues.input, {
        type: 'thread.open',
        threadId: 'doc',
        sessionId: 's2',
      });
      await sendInput(fx.sqs, fx.queues.input, { sessionId: 's1', threadId: 'doc', text: 'draft' });
      await receiveOutputs(fx.sqs, fx.queues.output, 1);
      const worktree = worktreePathFor(workspace, 'doc');

      // One of two sessions leaves: the worktree stays.
      await sendInput(fx.sqs, fx.queues.input, {
        type: 'thread.close',
        threadId: 'doc',
        sessionId: 's1',
      });
      await eventually('the first close to be handled', () =>
        a.logs.some((l) => l.msg === 'session left the thread; other sessions keep it open'),
      );
      expect(existsSync(worktree)).toBe(true);

      // The last one leaves: saved, then removed from disk.
      await sendInput(fx.sqs, fx.queues.input, {
        type: 'thread.close',
        threadId: 'doc',
        sessionId: 's2',
      });
      await eventually('the worktree to be removed', () => !existsSync(worktree));
      expect(await showInBare(fx.bare, threadBranch('john', 'doc'), 'CHAT.md')).toBe('draft\n');
      expect(
        (await git(workspace, 'branch', '--list', threadBranch('john', 'doc'))).trim(),
      ).not.toBe('');

      // Opened again, it comes back from its branch.
      await sendInput(fx.sqs, fx.queues.input, { sessionId: 's3', threadId: 'doc', text: 'again' });
      await receiveOutputs(fx.sqs, fx.queues.output, 1);
      expect(await readFile(join(worktree, 'CHAT.md'), 'utf8')).toBe('draft\nagain\n');
      expect((await a.stop()).code).toBe(0);
    },
    TIMEOUT,
  );

  it(
    'at a start on a workspace an earlier generation left, removes its thread worktrees once saved',
    async () => {
      const workspace = join(fx.root, 'workspace');
      const first = fx.agent({ workspacePath: workspace });
      await first.ready;
      await sendInput(fx.sqs, fx.queues.input, { sessionId: 's', threadId: 'left', text: 'one' });
      await receiveOutputs(fx.sqs, fx.queues.output, 1);
      // Killed: nothing saved.
      first.child.kill('SIGKILL');
      await first.exited;
      await writeFile(join(worktreePathFor(workspace, 'left'), 'more.txt'), 'unsaved\n');

      fx.queues = await createQueues(fx.sqs);
      const second = fx.agent({ workspacePath: workspace, generation: 2, queues: fx.queues });
      await second.ready;

      expect(await showInBare(fx.bare, threadBranch('john', 'left'), 'more.txt')).toBe('unsaved\n');
      expect(await threadDirs(workspace)).toEqual([]);
      expect((await second.stop()).code).toBe(0);
    },
    TIMEOUT,
  );
});

describe('checkpoints', () => {
  it(
    'a message that writes a file yields a checkpoint on the bare repository before any stop, announced once pushed, and the file survives kill -9',
    async () => {
      const announce = await announcementsQueue(fx.sqs);
      const workspace = join(fx.root, 'workspace');
      const a = fx.agent({
        workspacePath: workspace,
        workloadCommand: 'read -r line; echo "$line" > "$line.txt"; echo wrote',
        extra: {
          BERTH_AGENT_REPORTS_URL: announce,
          BERTH_CHECKPOINT_PUSH_INTERVAL: '1s',
        },
      });
      await a.ready;
      const branch = threadBranch('john', 'cp');

      // Act
      await sendInput(fx.sqs, fx.queues.input, { sessionId: 's', threadId: 'cp', text: 'alpha' });
      const [output] = await receiveOutputs(fx.sqs, fx.queues.output, 1);
      const [recorded] = await receiveCommands(fx.sqs, announce, 1);

      // Assess: on the bare repository's branch, with the agent still running.
      expect(output?.checkpoint).toMatch(/^[0-9a-f]{40}$/);
      expect(await showInBare(fx.bare, branch, 'alpha.txt')).toBe('alpha\n');
      expect((await git(fx.bare, 'rev-parse', branch)).trim()).toBe(output?.checkpoint);
      expect(a.child.exitCode).toBeNull();
      expect(recorded).toMatchObject({
        type: 'checkpoint.record',
        payload: {
          sessionId: 's',
          threadId: 'cp',
          containerId: 'acme.website.john',
          generation: 1,
          commit: output?.checkpoint,
          files: ['alpha.txt'],
          filesTotal: 1,
        },
      });
      const messageId = String(recorded?.payload.messageId);
      expect(await git(fx.bare, 'log', '-1', '--format=%s', branch)).toContain(
        `berth: checkpoint of message ${messageId} (session s)`,
      );

      // A message that changes nothing makes no checkpoint.
      await sendInput(fx.sqs, fx.queues.input, { sessionId: 's', threadId: 'cp', text: 'alpha' });
      const [unchanged] = await receiveOutputs(fx.sqs, fx.queues.output, 1);
      expect(unchanged?.checkpoint).toBeNull();

      // kill -9: nothing saved at stop, the checkpoint is what keeps the work.
      await sendInput(fx.sqs, fx.queues.input, { sessionId: 's', threadId: 'cp', text: 'beta' });
      const [second] = await receiveOutputs(fx.sqs, fx.queues.output, 1);
      await receiveCommands(fx.sqs, announce, 1);
      a.child.kill('SIGKILL');
      await a.exited;
      expect(await showInBare(fx.bare, branch, 'beta.txt')).toBe('beta\n');
      expect((await git(fx.bare, 'rev-parse', branch)).trim()).toBe(second?.checkpoint);
    },
    TIMEOUT,
  );

  it(
    'reverts a thread to a checkpoint as a new commit with its tree, announced with revertOf; the next message sees it',
    async () => {
      const announce = await announcementsQueue(fx.sqs);
      const workspace = join(fx.root, 'workspace');
      const a = fx.agent({
        workspacePath: workspace,
        workloadCommand: 'read -r line; echo "$line" > "$line.txt"; ls *.txt | tr "\\n" " "',
        extra: { BERTH_AGENT_REPORTS_URL: announce, BERTH_CHECKPOINT_PUSH_INTERVAL: '1s' },
      });
      await a.ready;
      await sendInput(fx.sqs, fx.queues.input, { sessionId: 's', threadId: 'r', text: 'one' });
      const [first] = await receiveOutputs(fx.sqs, fx.queues.output, 1);
      await sendInput(fx.sqs, fx.queues.input, { sessionId: 's', threadId: 'r', text: 'two' });
      const [second] = await receiveOutputs(fx.sqs, fx.queues.output, 1);
      await receiveCommands(fx.sqs, announce, 2);

      // Act
      await sendInput(fx.sqs, fx.queues.input, {
        type: 'thread.revert',
        threadId: 'r',
        sessionId: 's',
        checkpoint: first?.checkpoint,
        requestId: 'undo-1',
      });
      const [reverted] = await receiveCommands(fx.sqs, announce, 1);

      // Assess
      const branch = threadBranch('john', 'r');
      const head = (await git(fx.bare, 'rev-parse', branch)).trim();
      expect(reverted).toMatchObject({
        type: 'checkpoint.record',
        payload: {
          commit: head,
          revertOf: first?.checkpoint,
          messageId: 'undo-1',
          files: ['two.txt'],
        },
      });
      expect((await git(fx.bare, 'rev-parse', `${head}^{tree}`)).trim()).toBe(
        (await git(fx.bare, 'rev-parse', `${first?.checkpoint ?? ''}^{tree}`)).trim(),
      );
      // History is kept: the reverted work is the new commit's parent.
      expect((await git(fx.bare, 'rev-parse', `${head}^`)).trim()).toBe(second?.checkpoint);
      await sendInput(fx.sqs, fx.queues.input, { sessionId: 's', threadId: 'r', text: 'three' });
      const [next] = await receiveOutputs(fx.sqs, fx.queues.output, 1);
      expect(next?.text).toBe('one.txt three.txt ');
      expect((await a.stop()).code).toBe(0);
    },
    TIMEOUT,
  );
});
