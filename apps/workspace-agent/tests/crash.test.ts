/**
 * Crash windows around the workspace: git left mid-write by a killed process, a remote that
 * moved, and the order of the shutdown. Real git, real agents, real workload processes.
 */
import { describe, expect, it } from '@jest/globals';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { worktreePathFor } from '@berth/domain';
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

const fx = useAgentFixture('crash');

/**
 * Runs `git commit -a` in `cwd` and SIGKILLs it (and its editor) while it holds the index
 * lock: what a container killed in the middle of a save leaves behind.
 */
async function killGitMidCommit(cwd: string): Promise<void> {
  const editing = join(fx.root, `editing-${Date.now()}`);
  const child = spawn('git', ['-c', 'user.name=t', '-c', 'user.email=t@t', 'commit', '-a'], {
    cwd,
    detached: true,
    stdio: 'ignore',
    // git runs the editor while it holds index.lock; the editor tells us, then waits.
    env: { ...process.env, GIT_EDITOR: `touch '${editing}'; sleep 60; :` },
  });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  await eventually('git to hold the index lock', () => existsSync(editing));
  process.kill(-(child.pid ?? 0), 'SIGKILL');
  await exited;
}

describe('case 3: git locks left by a killed process', () => {
  it(
    'clears the stale locks of the main checkout and of a worktree before anything else, then saves',
    async () => {
      const workspace = join(fx.root, 'workspace');
      const first = fx.agent({ workspacePath: workspace });
      await first.ready;
      await sendInput(fx.sqs, fx.queues.input, { sessionId: 's', threadId: 't1', text: 'one' });
      await receiveOutputs(fx.sqs, fx.queues.output, 1);
      expect((await first.stop()).code).toBe(0);

      // Work left in the workspace, and git killed in the middle of committing it.
      const worktree = worktreePathFor(workspace, 't1');
      await writeFile(join(worktree, 'CHAT.md'), 'one\nleft behind\n');
      await writeFile(join(workspace, 'README.md'), '# project\nedited\n');
      await killGitMidCommit(worktree);
      await killGitMidCommit(workspace);
      const worktreeGitDir = (await git(worktree, 'rev-parse', '--absolute-git-dir')).trim();
      expect(existsSync(join(worktreeGitDir, 'index.lock'))).toBe(true);
      expect(existsSync(join(workspace, '.git', 'index.lock'))).toBe(true);
      // Killed between writing a ref's lock and renaming it into place.
      const head = (await git(worktree, 'rev-parse', 'HEAD')).trim();
      await writeFile(
        join(workspace, '.git', 'refs', 'heads', 'thread', 'john', 't1.lock'),
        `${head}\n`,
      );
      await writeFile(join(worktreeGitDir, 'HEAD.lock'), 'ref: refs/heads/thread/john/t1\n');
      await writeFile(join(workspace, '.git', 'config.lock'), '');

      fx.queues = await createQueues(fx.sqs);
      const second = fx.agent({ workspacePath: workspace, generation: 2, queues: fx.queues });
      await second.ready;

      expect(await showInBare(fx.bare, 'thread/john/t1', 'CHAT.md')).toBe('one\nleft behind\n');
      expect(await showInBare(fx.bare, 'workspace/john', 'README.md')).toBe('# project\nedited\n');
      const cleared = second.logs.find((l) => l.msg === 'cleared stale git locks');
      expect(cleared?.locks).toEqual(
        expect.arrayContaining([
          'config.lock',
          'index.lock',
          'refs/heads/thread/john/t1.lock',
          expect.stringMatching(/^worktrees\/[^/]+\/index\.lock$/),
          expect.stringMatching(/^worktrees\/[^/]+\/HEAD\.lock$/),
        ]),
      );
      await sendInput(fx.sqs, fx.queues.input, { sessionId: 's', threadId: 't1', text: 'two' });
      await receiveOutputs(fx.sqs, fx.queues.output, 1);
      expect((await second.stop()).code).toBe(0);
      expect(await showInBare(fx.bare, 'thread/john/t1', 'CHAT.md')).toBe(
        'one\nleft behind\ntwo\n',
      );
    },
    TIMEOUT,
  );

  it(
    'clears, before the final save, a lock that a workload killed in its own git command left',
    async () => {
      const workspace = join(fx.root, 'workspace');
      // An assistant that commits by itself and was killed with SIGKILL while git held the lock.
      const a = fx.agent({
        workspacePath: workspace,
        workloadCommand: 'cat > notes.txt; touch "$(git rev-parse --git-dir)/index.lock"; echo ok',
      });
      await a.ready;
      await sendInput(fx.sqs, fx.queues.input, { sessionId: 's', threadId: 'w', text: 'mine' });
      await receiveOutputs(fx.sqs, fx.queues.output, 1);

      const exit = await a.stop();

      expect(exit.code).toBe(0);
      expect(await showInBare(fx.bare, 'thread/john/w', 'notes.txt')).toBe('mine');
    },
    TIMEOUT,
  );
});

describe('case 5: the order of the shutdown', () => {
  it(
    'starts no workload after the stop began: a message queued behind a busy thread stays on the queue',
    async () => {
      const workspace = join(fx.root, 'workspace');
      const signals = join(fx.root, 'signals');
      const command = [
        'mkdir -p "$SIGNALS"',
        'read -r text',
        'if [ "$text" = first ]; then',
        '  touch "$SIGNALS/first-started"',
        '  i=0; while [ ! -f "$SIGNALS/release" ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done',
        'else',
        '  touch "$SIGNALS/$text-ran"',
        'fi',
        'echo "$text" >> CHAT.md; echo "$text"',
      ].join('\n');
      // Queued before the start, so that one receive takes both: the second waits on the thread.
      await sendInput(fx.sqs, fx.queues.input, { sessionId: 's', threadId: 'busy', text: 'first' });
      await sendInput(fx.sqs, fx.queues.input, {
        sessionId: 's',
        threadId: 'busy',
        text: 'second',
      });
      const a = fx.agent({
        workspacePath: workspace,
        workloadCommand: command,
        extra: { SIGNALS: signals },
      });
      await a.ready;
      await eventually('the first workload to start', () =>
        existsSync(join(signals, 'first-started')),
      );

      a.child.kill('SIGTERM');
      await eventually('the stop to begin', () =>
        a.logs.some((l) => typeof l.msg === 'string' && l.msg.startsWith('stopping:')),
      );
      await writeFile(join(signals, 'release'), '');
      const exit = await a.exited;

      expect(exit.code).toBe(0);
      expect(existsSync(join(signals, 'second-ran'))).toBe(false);
      const outputs = await receiveOutputs(fx.sqs, fx.queues.output, 1);
      expect(outputs.map((o) => o.text)).toEqual(['first\n']);
      expect(await showInBare(fx.bare, 'thread/john/busy', 'CHAT.md')).toBe('first\n');
      // Not acknowledged: it is on the queue, as a message not yet received would be.
      expect(await messagesOnQueue(fx.sqs, fx.queues.input)).toBe(1);
    },
    TIMEOUT,
  );

  it(
    'ends the jobs finished workloads left running before the final save, so what they write is saved',
    async () => {
      const workspace = join(fx.root, 'workspace');
      const jobStarted = join(fx.root, 'job-started');
      // A finished workload's background job, still writing into the worktree when the stop comes.
      const a = fx.agent({
        workspacePath: workspace,
        workloadCommand: [
          `( trap 'echo terminated > late.txt; exit 0' TERM; touch '${jobStarted}';`,
          '  while :; do sleep 0.1; done ) >/dev/null 2>&1 &',
          'echo started',
        ].join('\n'),
      });
      await a.ready;
      await sendInput(fx.sqs, fx.queues.input, { sessionId: 's', threadId: 'bg', text: 'go' });
      await receiveOutputs(fx.sqs, fx.queues.output, 1);
      await eventually('the background job to run', () => existsSync(jobStarted));

      const exit = await a.stop();

      expect(exit.code).toBe(0);
      expect(await showInBare(fx.bare, 'thread/john/bg', 'late.txt')).toBe('terminated\n');
      expect(await readFile(join(worktreePathFor(workspace, 'bg'), 'late.txt'), 'utf8')).toBe(
        'terminated\n',
      );
    },
    TIMEOUT,
  );
});

describe('case 5: the runtime knows every workload process group', () => {
  it(
    "tells the runtime each workload's process group as it starts",
    async () => {
      const workspace = join(fx.root, 'workspace');
      const a = fx.agent({ workspacePath: workspace, workloadCommand: 'echo $$' });
      await a.ready;

      await sendInput(fx.sqs, fx.queues.input, { sessionId: 's', threadId: 'g', text: 'x' });
      const [output] = await receiveOutputs(fx.sqs, fx.queues.output, 1);

      // The workload's shell leads its own group, so its pid is the group's id.
      const pgid = Number(output?.text.trim());
      expect(pgid).toBeGreaterThan(1);
      expect(a.notices).toContainEqual({ type: 'workload', pgid });
      expect((await a.stop()).code).toBe(0);
    },
    TIMEOUT,
  );
});

describe('case 4: the remote moved under a branch', () => {
  /**
   * Another writer pushes `files` onto `branch`, on top of it as the remote has it (the
   * agent's checkpoint is there already).
   */
  async function pushFromElsewhere(branch: string, files: Record<string, string>): Promise<void> {
    const other = join(fx.root, `other-${Date.now()}`);
    await git(fx.root, 'clone', '--quiet', fx.bare, other);
    await git(other, 'checkout', '--quiet', '-b', branch, `origin/${branch}`);
    for (const [name, text] of Object.entries(files)) await writeFile(join(other, name), text);
    await git(other, 'add', '-A');
    await git(other, 'commit', '--quiet', '-m', 'from elsewhere');
    await git(other, 'push', '--quiet', 'origin', `HEAD:refs/heads/${branch}`);
  }

  it(
    'integrates the other writer when the work merges cleanly, and pushes the branch',
    async () => {
      const workspace = join(fx.root, 'workspace');
      const a = fx.agent({ workspacePath: workspace });
      await a.ready;
      await sendInput(fx.sqs, fx.queues.input, { sessionId: 's', threadId: 't', text: 'mine' });
      await receiveOutputs(fx.sqs, fx.queues.output, 1);
      await eventually('the checkpoint on the remote', async () =>
        (await showInBare(fx.bare, 'thread/john/t', 'CHAT.md')) === 'mine\n' ? true : undefined,
      );
      await pushFromElsewhere('thread/john/t', { 'theirs.txt': 'theirs\n' });
      // Work after the checkpoint, which only the stop's save pushes.
      await writeFile(join(worktreePathFor(workspace, 't'), 'more.txt'), 'more\n');

      const exit = await a.stop();

      expect(exit.code).toBe(0);
      expect(await showInBare(fx.bare, 'thread/john/t', 'CHAT.md')).toBe('mine\n');
      expect(await showInBare(fx.bare, 'thread/john/t', 'more.txt')).toBe('more\n');
      expect(await showInBare(fx.bare, 'thread/john/t', 'theirs.txt')).toBe('theirs\n');
      const subjects = await git(fx.bare, 'log', '--format=%s', 'thread/john/t');
      expect(subjects).toContain('from elsewhere');
      expect(subjects).toMatch(/^berth: save thread t at /m);
      expect(a.notices.filter((n) => n.type === 'stopping')).toEqual([]);
    },
    TIMEOUT,
  );

  it(
    'pushes work that does not merge to a fallback ref, reports where, and leaves the branch alone',
    async () => {
      const workspace = join(fx.root, 'workspace');
      const a = fx.agent({ workspacePath: workspace, generation: 7 });
      await a.ready;
      await sendInput(fx.sqs, fx.queues.input, { sessionId: 's', threadId: 't', text: 'mine' });
      await receiveOutputs(fx.sqs, fx.queues.output, 1);
      await eventually('the checkpoint on the remote', async () =>
        (await showInBare(fx.bare, 'thread/john/t', 'CHAT.md')) === 'mine\n' ? true : undefined,
      );
      await pushFromElsewhere('thread/john/t', { 'CHAT.md': 'theirs\n' });
      const worktree = worktreePathFor(workspace, 't');
      await writeFile(join(worktree, 'CHAT.md'), 'mine\nmore\n');

      const exit = await a.stop();

      expect(exit.code).toBe(0);
      const fallback = 'refs/berth/conflicts/acme.website.john/7/thread/john/t';
      expect(await showInBare(fx.bare, fallback, 'CHAT.md')).toBe('mine\nmore\n');
      expect(await showInBare(fx.bare, 'thread/john/t', 'CHAT.md')).toBe('theirs\n');
      expect(a.notices).toContainEqual({
        type: 'stopping',
        reason: 'saved_elsewhere:refs/berth/conflicts/acme.website.john/7/ thread/john/t',
      });
      // The failed merge left nothing half-done in the worktree.
      expect(await readFile(join(worktree, 'CHAT.md'), 'utf8')).toBe('mine\nmore\n');
      expect((await git(worktree, 'status', '--porcelain')).trim()).toBe('');
    },
    TIMEOUT,
  );
});
