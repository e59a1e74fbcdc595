import { describe, expect, it } from '@jest/globals';
import { existsSync } from 'node:fs';
import { readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DeleteQueueCommand } from '@aws-sdk/client-sqs';
import { threadBranch, worktreePathFor } from '@berth/domain';
import {
  eventually,
  git,
  messagesOnQueue,
  receiveOutputs,
  sendInput,
  showInBare,
  createQueues,
  useAgentFixture,
} from './harness.ts';

const TIMEOUT = 60_000;

const fx = useAgentFixture('it');

describe('start', () => {
  it(
    'clones the repository, excludes .berth/ and signals ready over IPC',
    async () => {
      // Prepare
      const workspace = join(fx.root, 'workspace');
      const a = fx.agent({ workspacePath: workspace });

      // Act
      await a.ready;

      // Assess
      expect(a.notices).toContainEqual({ type: 'ready' });
      expect(await readFile(join(workspace, 'README.md'), 'utf8')).toBe('# project\n');
      expect(await readFile(join(workspace, '.git', 'info', 'exclude'), 'utf8')).toMatch(
        /^\/\.berth\/$/m,
      );
      await eventually('the ready log line', () => a.logs.some((l) => l.msg === 'ready'));
      expect(await a.stop()).toEqual({ code: 0, signal: null });
    },
    TIMEOUT,
  );

  it(
    'exits 1 with start_failed when the repository cannot be cloned',
    async () => {
      const a = fx.agent({
        workspacePath: join(fx.root, 'ws'),
        repoUrl: join(fx.root, 'missing.git'),
      });

      const { code } = await a.exited;

      expect(code).toBe(1);
      expect(a.notices).toEqual([
        {
          type: 'stopping',
          reason: expect.stringMatching(/^start_failed:clone failed: /) as unknown as string,
        },
      ]);
    },
    TIMEOUT,
  );

  it(
    'refuses an invalid environment, naming every bad variable',
    async () => {
      const a = fx.agent({
        workspacePath: join(fx.root, 'ws'),
        generation: 0,
        containerId: 'Not.Valid',
        shutdownGrace: 'soon',
      });

      const { code } = await a.exited;

      expect(code).toBe(78);
      expect(a.stderr()).toContain('CONTAINER_ID');
      expect(a.stderr()).toContain('BERTH_GENERATION');
      expect(a.stderr()).toContain('BERTH_SHUTDOWN_GRACE');
      expect(a.notices[0]?.reason).toMatch(
        /^start_failed:invalid environment \(CONTAINER_ID, BERTH_GENERATION, BERTH_SHUTDOWN_GRACE\)$/,
      );
    },
    TIMEOUT,
  );
});

describe('its input queue deleted behind its back', () => {
  it(
    'saves the workspace and exits non-zero, so the container is not reused',
    async () => {
      // Prepare
      const a = fx.agent({ workspacePath: join(fx.root, 'workspace') });
      await a.ready;
      await sendInput(fx.sqs, fx.queues.input, {
        sessionId: 's',
        threadId: 'kept',
        text: 'unsaved',
      });
      await receiveOutputs(fx.sqs, fx.queues.output, 1);

      // Act
      await fx.sqs.send(new DeleteQueueCommand({ QueueUrl: fx.queues.input }));
      const { code } = await a.exited;

      // Assess
      expect(code).toBe(1);
      expect(a.logs.some((line) => /input queue is gone/.test(String(line.msg)))).toBe(true);
      expect(await showInBare(fx.bare, threadBranch('john', 'kept'), 'CHAT.md')).toBe('unsaved\n');
    },
    TIMEOUT,
  );
});

describe('messages', () => {
  it(
    'runs the default workload in the thread worktree and answers with the text',
    async () => {
      const workspace = join(fx.root, 'workspace');
      const a = fx.agent({ workspacePath: workspace });
      await a.ready;

      await sendInput(fx.sqs, fx.queues.input, {
        sessionId: 'sess-1',
        threadId: 'thread-1',
        text: 'hello berth',
      });
      const [output] = await receiveOutputs(fx.sqs, fx.queues.output, 1);

      const worktree = worktreePathFor(workspace, 'thread-1');
      expect(output).toEqual({
        sessionId: 'sess-1',
        threadId: 'thread-1',
        text: 'hello berth',
        exitCode: 0,
        // The run changed CHAT.md: its checkpoint is the thread's head.
        checkpoint: (await git(worktree, 'rev-parse', 'HEAD')).trim(),
      });
      expect(await readFile(join(worktree, 'CHAT.md'), 'utf8')).toBe('hello berth\n');
      expect((await git(worktree, 'rev-parse', '--abbrev-ref', 'HEAD')).trim()).toBe(
        threadBranch('john', 'thread-1'),
      );
      // New threads start from the default branch's head.
      expect(await readFile(join(worktree, 'README.md'), 'utf8')).toBe('# project\n');
      await eventually(
        'the input message to be deleted',
        async () => (await messagesOnQueue(fx.sqs, fx.queues.input)) === 0,
      );
      expect((await a.stop()).code).toBe(0);
    },
    TIMEOUT,
  );

  it(
    'runs BERTH_WORKLOAD_COMMAND through /bin/sh with the text on stdin and reports its exit code',
    async () => {
      const workspace = join(fx.root, 'workspace');
      const a = fx.agent({
        workspacePath: workspace,
        workloadCommand:
          'read -r line; echo "got:$line"; echo "ids:$CONTAINER_ID:$BERTH_SESSION_ID:$BERTH_THREAD_ID:$WORKSPACE_PATH"; pwd; exit 3',
      });
      await a.ready;

      await sendInput(fx.sqs, fx.queues.input, {
        sessionId: 'sess-2',
        threadId: 'feature:x',
        text: 'do it',
      });
      const [output] = await receiveOutputs(fx.sqs, fx.queues.output, 1);

      expect(output?.exitCode).toBe(3);
      expect(output?.sessionId).toBe('sess-2');
      expect(output?.threadId).toBe('feature:x');
      expect(output?.text).toBe(
        `got:do it\nids:acme.website.john:sess-2:feature:x:${workspace}\n${worktreePathFor(workspace, 'feature:x')}\n`,
      );
      await eventually(
        'the input message to be deleted',
        async () => (await messagesOnQueue(fx.sqs, fx.queues.input)) === 0,
      );
      expect((await a.stop()).code).toBe(0);
    },
    TIMEOUT,
  );

  it(
    'creates the worktree on thread.open without answering',
    async () => {
      const workspace = join(fx.root, 'workspace');
      const a = fx.agent({ workspacePath: workspace });
      await a.ready;

      await sendInput(fx.sqs, fx.queues.input, {
        type: 'thread.open',
        threadId: 'opened',
        sessionId: 'sess-3',
      });

      const worktree = worktreePathFor(workspace, 'opened');
      await eventually('the worktree to exist', () => existsSync(join(worktree, '.git')));
      expect((await git(worktree, 'rev-parse', '--abbrev-ref', 'HEAD')).trim()).toBe(
        'thread/john/opened',
      );
      await eventually(
        'the control message to be deleted',
        async () => (await messagesOnQueue(fx.sqs, fx.queues.input)) === 0,
      );
      expect(await messagesOnQueue(fx.sqs, fx.queues.output)).toBe(0);
      expect((await a.stop()).code).toBe(0);
    },
    TIMEOUT,
  );

  it(
    'answers invalid messages with exit code 2 naming the field, and deletes them',
    async () => {
      const a = fx.agent({ workspacePath: join(fx.root, 'workspace') });
      await a.ready;

      await sendInput(fx.sqs, fx.queues.input, 'this is not json');
      await sendInput(fx.sqs, fx.queues.input, { sessionId: 'bad-1', text: 'no thread' });
      await sendInput(fx.sqs, fx.queues.input, {
        sessionId: 'bad-2',
        threadId: 'has spaces/and slash',
        text: 'x',
      });
      await sendInput(fx.sqs, fx.queues.input, { sessionId: 'bad-3', threadId: 't', text: 42 });
      await sendInput(fx.sqs, fx.queues.input, {
        type: 'thread.delete',
        threadId: 't',
        sessionId: 'bad-4',
      });
      const outputs = await receiveOutputs(fx.sqs, fx.queues.output, 5);

      const bySession = new Map(outputs.map((o) => [o.sessionId ?? 'none', o]));
      expect(outputs.every((o) => o.exitCode === 2)).toBe(true);
      expect(bySession.get('none')?.text).toMatch(/not valid JSON/);
      expect(bySession.get('bad-1')).toEqual({
        sessionId: 'bad-1',
        text: 'invalid message: threadId is required',
        exitCode: 2,
      });
      expect(bySession.get('bad-2')?.text).toMatch(/^invalid message: threadId must be/);
      expect(bySession.get('bad-2')?.threadId).toBeUndefined();
      expect(bySession.get('bad-3')).toEqual({
        sessionId: 'bad-3',
        threadId: 't',
        text: 'invalid message: text must be a string',
        exitCode: 2,
      });
      expect(bySession.get('bad-4')?.text).toMatch(
        /^invalid message: type must be "thread.open", "thread.close", "thread.revert" or absent/,
      );
      await eventually(
        'the invalid messages to be deleted',
        async () => (await messagesOnQueue(fx.sqs, fx.queues.input)) === 0,
      );
      expect((await a.stop()).code).toBe(0);
    },
    TIMEOUT,
  );

  it(
    'runs the messages of one thread in order and different threads concurrently',
    async () => {
      const workspace = join(fx.root, 'workspace');
      const signals = join(fx.root, 'signals');
      // Thread "a" waits until thread "b" has run: it would time out if threads ran one after another.
      const command = [
        'mkdir -p "$SIGNALS"',
        'if [ "$BERTH_THREAD_ID" = a ] && [ ! -f "$SIGNALS/a-waited" ]; then',
        '  i=0; while [ ! -f "$SIGNALS/b" ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done',
        '  [ -f "$SIGNALS/b" ] || exit 9',
        '  touch "$SIGNALS/a-waited"',
        'fi',
        '[ "$BERTH_THREAD_ID" = b ] && touch "$SIGNALS/b"',
        'cat >> CHAT.md; echo >> CHAT.md; tail -n 1 CHAT.md',
      ].join('\n');
      // Queued before the agent starts, so that its first receive takes them all at once.
      for (const text of ['a1', 'a2', 'a3'])
        await sendInput(fx.sqs, fx.queues.input, { sessionId: 's', threadId: 'a', text });
      await sendInput(fx.sqs, fx.queues.input, { sessionId: 's', threadId: 'b', text: 'b1' });

      const a = fx.agent({
        workspacePath: workspace,
        workloadCommand: command,
        extra: { SIGNALS: signals },
      });
      await a.ready;
      const outputs = await receiveOutputs(fx.sqs, fx.queues.output, 4);

      expect(outputs.map((o) => o.exitCode)).toEqual([0, 0, 0, 0]);
      expect(await readFile(join(worktreePathFor(workspace, 'a'), 'CHAT.md'), 'utf8')).toBe(
        'a1\na2\na3\n',
      );
      expect(outputs.filter((o) => o.threadId === 'a').map((o) => o.text)).toEqual([
        'a1\n',
        'a2\n',
        'a3\n',
      ]);
      expect((await a.stop()).code).toBe(0);
    },
    TIMEOUT,
  );
});

describe('saving state', () => {
  it(
    'commits and pushes every worktree and the main checkout on SIGTERM; a fresh workspace restores them',
    async () => {
      const workspace = join(fx.root, 'workspace');
      const a = fx.agent({ workspacePath: workspace });
      await a.ready;
      await sendInput(fx.sqs, fx.queues.input, {
        sessionId: 's',
        threadId: 'chat:1',
        text: 'first line',
      });
      await receiveOutputs(fx.sqs, fx.queues.output, 1);
      const worktree = worktreePathFor(workspace, 'chat:1');
      await writeFile(join(worktree, 'notes.txt'), 'written directly\n');
      await writeFile(join(workspace, 'scratch.txt'), 'main checkout\n');

      const exit = await a.stop();

      expect(exit).toEqual({ code: 0, signal: null });
      const branch = threadBranch('john', 'chat:1');
      expect(branch).toBe('thread/john/chat%3A1');
      expect(await showInBare(fx.bare, branch, 'CHAT.md')).toBe('first line\n');
      expect(await showInBare(fx.bare, branch, 'notes.txt')).toBe('written directly\n');
      expect(await showInBare(fx.bare, 'workspace/john', 'scratch.txt')).toBe('main checkout\n');
      expect(await showInBare(fx.bare, 'main', 'scratch.txt')).toBeUndefined();
      const [subject, author] = (
        await git(fx.bare, 'log', '-1', '--format=%s%n%an <%ae>', branch)
      ).split('\n');
      expect(subject).toMatch(
        /^berth: save thread chat:1 at \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/,
      );
      expect(author).toBe('berth <berth@localhost>');

      // A new generation, with a fresh workspace and queues of its own, gets a thread back when
      // one of its sessions opens it, and not before.
      const fresh = join(fx.root, 'workspace-gen2');
      fx.queues = await createQueues(fx.sqs);
      const b = fx.agent({ workspacePath: fresh, generation: 2, queues: fx.queues });
      await b.ready;
      const restored = worktreePathFor(fresh, 'chat:1');
      expect(existsSync(restored)).toBe(false);
      await sendInput(fx.sqs, fx.queues.input, {
        type: 'thread.open',
        threadId: 'chat:1',
        sessionId: 's',
      });
      await eventually('the restored worktree', () => existsSync(join(restored, 'notes.txt')));
      expect(await readFile(join(restored, 'CHAT.md'), 'utf8')).toBe('first line\n');
      expect(await readFile(join(restored, 'notes.txt'), 'utf8')).toBe('written directly\n');
      expect((await git(restored, 'rev-parse', '--abbrev-ref', 'HEAD')).trim()).toBe(branch);
      expect(await readFile(join(fresh, 'scratch.txt'), 'utf8')).toBe('main checkout\n');

      await sendInput(fx.sqs, fx.queues.input, {
        sessionId: 's',
        threadId: 'chat:1',
        text: 'second line',
      });
      await receiveOutputs(fx.sqs, fx.queues.output, 1);
      expect(await readFile(join(restored, 'CHAT.md'), 'utf8')).toBe('first line\nsecond line\n');
      expect((await b.stop()).code).toBe(0);
      expect(await showInBare(fx.bare, branch, 'CHAT.md')).toBe('first line\nsecond line\n');
    },
    TIMEOUT,
  );

  it(
    'lets a message in flight finish before saving',
    async () => {
      const workspace = join(fx.root, 'workspace');
      const a = fx.agent({
        workspacePath: workspace,
        workloadCommand:
          'touch started; sleep 2; cat >> CHAT.md; echo finished >> CHAT.md; echo done',
      });
      await a.ready;
      await sendInput(fx.sqs, fx.queues.input, {
        sessionId: 's',
        threadId: 'slow',
        text: 'long task',
      });
      const worktree = worktreePathFor(workspace, 'slow');
      await eventually('the workload to start', () => existsSync(join(worktree, 'started')));

      const exit = await a.stop();
      const [output] = await receiveOutputs(fx.sqs, fx.queues.output, 1);

      expect(exit.code).toBe(0);
      expect(output).toEqual({
        sessionId: 's',
        threadId: 'slow',
        text: 'done\n',
        exitCode: 0,
        checkpoint: expect.stringMatching(/^[0-9a-f]{40}$/) as unknown as string,
      });
      expect(await showInBare(fx.bare, 'thread/john/slow', 'CHAT.md')).toBe('long taskfinished\n');
      expect(await messagesOnQueue(fx.sqs, fx.queues.input)).toBe(0);
    },
    TIMEOUT,
  );

  it(
    'interrupts a workload that overruns the grace period, then saves',
    async () => {
      const workspace = join(fx.root, 'workspace');
      const a = fx.agent({
        workspacePath: workspace,
        shutdownGrace: '12s',
        workloadCommand: 'echo partial > partial.txt; echo before; sleep 30; echo after',
      });
      await a.ready;
      await sendInput(fx.sqs, fx.queues.input, { sessionId: 's', threadId: 'stuck', text: 'x' });
      await eventually('the workload to start', () =>
        existsSync(join(worktreePathFor(workspace, 'stuck'), 'partial.txt')),
      );

      const startedStop = Date.now();
      const exit = await a.stop();
      const [output] = await receiveOutputs(fx.sqs, fx.queues.output, 1);

      expect(exit.code).toBe(0);
      expect(Date.now() - startedStop).toBeLessThan(12_000);
      expect(output?.text).toBe('before\n');
      expect(output?.exitCode).toBe(143);
      expect(await showInBare(fx.bare, 'thread/john/stuck', 'partial.txt')).toBe('partial\n');
    },
    TIMEOUT,
  );

  it(
    'exits 75 with save_failed when the push fails, keeps the workspace, and pushes it on the next start',
    async () => {
      const workspace = join(fx.root, 'workspace');
      const a = fx.agent({ workspacePath: workspace });
      await a.ready;
      await sendInput(fx.sqs, fx.queues.input, {
        sessionId: 's',
        threadId: 'keep-me',
        text: 'precious',
      });
      await receiveOutputs(fx.sqs, fx.queues.output, 1);
      const away = `${fx.bare}-away`;
      await rename(fx.bare, away);
      // Work after the last checkpoint: only the stop's save can push it.
      const worktree = worktreePathFor(workspace, 'keep-me');
      await writeFile(join(worktree, 'after.txt'), 'after the checkpoint\n');

      const exit = await a.stop();

      expect(exit.code).toBe(75);
      const stopping = a.notices.find((n) => n.type === 'stopping');
      expect(stopping?.reason).toMatch(/^save_failed:push: /);
      expect(await readFile(join(worktree, 'CHAT.md'), 'utf8')).toBe('precious\n');
      expect(await git(worktree, 'log', '-1', '--format=%s')).toMatch(
        /^berth: save thread keep-me at /,
      );

      // Work left uncommitted after the failed save is picked up too.
      await writeFile(join(worktree, 'later.txt'), 'after the failed save\n');
      await rename(away, fx.bare);
      const b = fx.agent({
        workspacePath: workspace,
        generation: 2,
        queues: await createQueues(fx.sqs),
      });
      await b.ready;

      expect(await showInBare(fx.bare, 'thread/john/keep-me', 'CHAT.md')).toBe('precious\n');
      expect(await showInBare(fx.bare, 'thread/john/keep-me', 'after.txt')).toBe(
        'after the checkpoint\n',
      );
      expect(await showInBare(fx.bare, 'thread/john/keep-me', 'later.txt')).toBe(
        'after the failed save\n',
      );
      const readyAt = b.logs.findIndex((l) => l.msg === 'ready');
      const savedAt = b.logs.findIndex(
        (l) => l.msg === 'saved the work an earlier generation left in the workspace',
      );
      expect(savedAt).toBeGreaterThanOrEqual(0);
      expect(savedAt).toBeLessThan(readyAt);
      expect((await b.stop()).code).toBe(0);
    },
    TIMEOUT,
  );
});
