/**
 * Crash windows around the workspace: git left mid-write by a killed process, a remote that
 * moved, and the order of the shutdown. Real git, real agents, real workload processes.
 */
import { afterAll, afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { SQSClient } from '@aws-sdk/client-sqs';
import { worktreePathFor } from '@berth/domain';
import {
  createBareRepo,
  createQueues,
  eventually,
  git,
  killAgent,
  messagesOnQueue,
  receiveOutputs,
  removeDir,
  sendInput,
  showInBare,
  sqsClient,
  startAgent,
  tempDir,
  type AgentEnvInput,
  type AgentProcess,
  type Queues,
} from './harness.ts';

const TIMEOUT = 60_000;

let sqs: SQSClient;
let root: string;
let bare: string;
let queues: Queues;
const agents: AgentProcess[] = [];

function agent(
  input: Omit<AgentEnvInput, 'repoUrl' | 'queues'> & Partial<AgentEnvInput>,
): AgentProcess {
  const started = startAgent({ repoUrl: bare, queues, ...input });
  agents.push(started);
  return started;
}

beforeEach(async () => {
  sqs ??= sqsClient();
  root = await tempDir('crash');
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

/**
 * Runs `git commit -a` in `cwd` and SIGKILLs it (and its editor) while it holds the index
 * lock: what a container killed in the middle of a save leaves behind.
 */
async function killGitMidCommit(cwd: string): Promise<void> {
  const editing = join(root, `editing-${Date.now()}`);
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
      const workspace = join(root, 'workspace');
      const first = agent({ workspacePath: workspace });
      await first.ready;
      await sendInput(sqs, queues.input, { sessionId: 's', threadId: 't1', text: 'one' });
      await receiveOutputs(sqs, queues.output, 1);
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
      await writeFile(join(workspace, '.git', 'refs', 'heads', 'thread', 't1.lock'), `${head}\n`);
      await writeFile(join(worktreeGitDir, 'HEAD.lock'), 'ref: refs/heads/thread/t1\n');
      await writeFile(join(workspace, '.git', 'config.lock'), '');

      queues = await createQueues(sqs);
      const second = agent({ workspacePath: workspace, generation: 2, queues });
      await second.ready;

      expect(await showInBare(bare, 'thread/t1', 'CHAT.md')).toBe('one\nleft behind\n');
      expect(await showInBare(bare, 'workspace/john', 'README.md')).toBe('# project\nedited\n');
      const cleared = second.logs.find((l) => l.msg === 'cleared stale git locks');
      expect(cleared?.locks).toEqual(
        expect.arrayContaining([
          'config.lock',
          'index.lock',
          'refs/heads/thread/t1.lock',
          expect.stringMatching(/^worktrees\/[^/]+\/index\.lock$/),
          expect.stringMatching(/^worktrees\/[^/]+\/HEAD\.lock$/),
        ]),
      );
      await sendInput(sqs, queues.input, { sessionId: 's', threadId: 't1', text: 'two' });
      await receiveOutputs(sqs, queues.output, 1);
      expect((await second.stop()).code).toBe(0);
      expect(await showInBare(bare, 'thread/t1', 'CHAT.md')).toBe('one\nleft behind\ntwo\n');
    },
    TIMEOUT,
  );

  it(
    'clears, before the final save, a lock that a workload killed in its own git command left',
    async () => {
      const workspace = join(root, 'workspace');
      // An assistant that commits by itself and was killed with SIGKILL while git held the lock.
      const a = agent({
        workspacePath: workspace,
        workloadCommand: 'cat > notes.txt; touch "$(git rev-parse --git-dir)/index.lock"; echo ok',
      });
      await a.ready;
      await sendInput(sqs, queues.input, { sessionId: 's', threadId: 'w', text: 'mine' });
      await receiveOutputs(sqs, queues.output, 1);

      const exit = await a.stop();

      expect(exit.code).toBe(0);
      expect(await showInBare(bare, 'thread/w', 'notes.txt')).toBe('mine');
    },
    TIMEOUT,
  );
});

describe('case 5: the order of the shutdown', () => {
  it(
    'starts no workload after the stop began: a message queued behind a busy thread stays on the queue',
    async () => {
      const workspace = join(root, 'workspace');
      const signals = join(root, 'signals');
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
      await sendInput(sqs, queues.input, { sessionId: 's', threadId: 'busy', text: 'first' });
      await sendInput(sqs, queues.input, { sessionId: 's', threadId: 'busy', text: 'second' });
      const a = agent({
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
      const outputs = await receiveOutputs(sqs, queues.output, 1);
      expect(outputs.map((o) => o.text)).toEqual(['first\n']);
      expect(await showInBare(bare, 'thread/busy', 'CHAT.md')).toBe('first\n');
      // Not acknowledged: it is on the queue, as a message not yet received would be.
      expect(await messagesOnQueue(sqs, queues.input)).toBe(1);
    },
    TIMEOUT,
  );

  it(
    'ends the jobs finished workloads left running before the final save, so what they write is saved',
    async () => {
      const workspace = join(root, 'workspace');
      const jobStarted = join(root, 'job-started');
      // A finished workload's background job, still writing into the worktree when the stop comes.
      const a = agent({
        workspacePath: workspace,
        workloadCommand: [
          `( trap 'echo terminated > late.txt; exit 0' TERM; touch '${jobStarted}';`,
          '  while :; do sleep 0.1; done ) >/dev/null 2>&1 &',
          'echo started',
        ].join('\n'),
      });
      await a.ready;
      await sendInput(sqs, queues.input, { sessionId: 's', threadId: 'bg', text: 'go' });
      await receiveOutputs(sqs, queues.output, 1);
      await eventually('the background job to run', () => existsSync(jobStarted));

      const exit = await a.stop();

      expect(exit.code).toBe(0);
      expect(await showInBare(bare, 'thread/bg', 'late.txt')).toBe('terminated\n');
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
      const workspace = join(root, 'workspace');
      const a = agent({ workspacePath: workspace, workloadCommand: 'echo $$' });
      await a.ready;

      await sendInput(sqs, queues.input, { sessionId: 's', threadId: 'g', text: 'x' });
      const [output] = await receiveOutputs(sqs, queues.output, 1);

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
  /** Another writer pushes `files` onto `branch`, starting from `main`. */
  async function pushFromElsewhere(branch: string, files: Record<string, string>): Promise<void> {
    const other = join(root, `other-${Date.now()}`);
    await git(root, 'clone', '--quiet', bare, other);
    await git(other, 'checkout', '--quiet', '-b', branch, 'origin/main');
    for (const [name, text] of Object.entries(files)) await writeFile(join(other, name), text);
    await git(other, 'add', '-A');
    await git(other, 'commit', '--quiet', '-m', 'from elsewhere');
    await git(other, 'push', '--quiet', 'origin', `HEAD:refs/heads/${branch}`);
  }

  it(
    'integrates the other writer when the work merges cleanly, and pushes the branch',
    async () => {
      const workspace = join(root, 'workspace');
      const a = agent({ workspacePath: workspace });
      await a.ready;
      await sendInput(sqs, queues.input, { sessionId: 's', threadId: 't', text: 'mine' });
      await receiveOutputs(sqs, queues.output, 1);
      await pushFromElsewhere('thread/t', { 'theirs.txt': 'theirs\n' });

      const exit = await a.stop();

      expect(exit.code).toBe(0);
      expect(await showInBare(bare, 'thread/t', 'CHAT.md')).toBe('mine\n');
      expect(await showInBare(bare, 'thread/t', 'theirs.txt')).toBe('theirs\n');
      const subjects = await git(bare, 'log', '--format=%s', 'thread/t');
      expect(subjects).toContain('from elsewhere');
      expect(subjects).toMatch(/^berth: save thread t at /m);
      expect(a.notices.filter((n) => n.type === 'stopping')).toEqual([]);
    },
    TIMEOUT,
  );

  it(
    'pushes work that does not merge to a fallback ref, reports where, and leaves the branch alone',
    async () => {
      const workspace = join(root, 'workspace');
      const a = agent({ workspacePath: workspace, generation: 7 });
      await a.ready;
      await sendInput(sqs, queues.input, { sessionId: 's', threadId: 't', text: 'mine' });
      await receiveOutputs(sqs, queues.output, 1);
      await pushFromElsewhere('thread/t', { 'CHAT.md': 'theirs\n' });

      const exit = await a.stop();

      expect(exit.code).toBe(0);
      const fallback = 'refs/berth/conflicts/acme.website.john/7/thread/t';
      expect(await showInBare(bare, fallback, 'CHAT.md')).toBe('mine\n');
      expect(await showInBare(bare, 'thread/t', 'CHAT.md')).toBe('theirs\n');
      expect(a.notices).toContainEqual({
        type: 'stopping',
        reason: 'saved_elsewhere:refs/berth/conflicts/acme.website.john/7/ thread/t',
      });
      // The failed merge left nothing half-done in the worktree.
      const worktree = worktreePathFor(workspace, 't');
      expect(await readFile(join(worktree, 'CHAT.md'), 'utf8')).toBe('mine\n');
      expect((await git(worktree, 'status', '--porcelain')).trim()).toBe('');
    },
    TIMEOUT,
  );
});
