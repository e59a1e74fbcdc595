import { existsSync } from 'node:fs';
import { appendFile, mkdir, readdir, readFile, rm } from 'node:fs/promises';
import { dirname, join, relative, resolve } from 'node:path';
import { simpleGit, type SimpleGit } from 'simple-git';
import type { Logger } from 'pino';
import {
  UnavailableError,
  legacyThreadBranch,
  systemClock,
  threadBranch,
  worktreePathFor,
  WORKTREES_DIR,
  type Clock,
} from '@berth/domain';
import { gitProcessEnv, redactKnownSecrets, type GitCredentials } from './git-credentials.ts';
import { KeyedSerialQueue } from './keyed-queue.ts';
import { landRejectedPush, type RejectedPushContext } from './rejected-push.ts';

/** Identity of every commit the agent makes; given per command so no git config is touched. */
const GIT_CONFIG = ['user.name=berth', 'user.email=berth@localhost', 'commit.gpgsign=false'];
/** A git process that prints nothing for this long is presumed hung (a dead remote) and killed. */
const GIT_SILENCE_TIMEOUT_MS = 120_000;
const THREAD_PREFIX = 'thread/';
/** git's well-known empty tree: the root of a thread started in a repository without commits. */
const EMPTY_TREE = '4b825dc642cb6eb9a060e54bf8d69288fbee4904';
const REMOTE = 'origin';

export interface GitWorkspaceOptions {
  workspacePath: string;
  repoUrl: string;
  userId: string;
  /**
   * `refs/berth/conflicts/<containerId>/<generation>/`: where the work of a branch goes when
   * the remote moved under it and the two do not merge.
   */
  fallbackRefPrefix: string;
  logger: Logger;
  clock?: Clock;
  /** HTTPS credentials for the remote, handed to git through a credential helper. */
  credentials?: GitCredentials | undefined;
}

export interface SaveFailure {
  step: 'inspect' | 'commit' | 'push';
  /** A worktree path, a branch, or `origin`. */
  target: string;
  detail: string;
}

export interface SaveResult {
  ok: boolean;
  /** Worktree paths (the main checkout included) where a commit was made. */
  committed: string[];
  /** Branches pushed (merged ones included). */
  pushed: string[];
  /** Branches the remote had moved under, merged with it before they were pushed. */
  merged: string[];
  /** Branches whose work did not merge with the remote's: pushed to `ref` instead. */
  fallbacks: { branch: string; ref: string }[];
  failures: SaveFailure[];
}

export interface PrepareResult {
  /** `cloned`: a fresh checkout; `existing`: a checkout left by an earlier generation. */
  mode: 'cloned' | 'existing';
  /** For an existing checkout: what was committed and pushed before anything else. */
  recovery: SaveResult | undefined;
  /** Thread worktrees present after the start, by threadId. */
  threads: string[];
  /** Thread worktrees that could not be restored, with why. */
  restoreFailures: { threadId: string; detail: string }[];
}

interface WorktreeEntry {
  path: string;
  branch: string | undefined;
  detached: boolean;
  bare: boolean;
}

/** `thread/<ref>` back to its threadId: the inverse of the domain's threadRefName. */
export function threadIdOfRef(refName: string): string {
  return refName.replaceAll('%3A', ':').replaceAll('%2E', '.');
}

/** Credentials in a remote URL never reach a log, an error or a stop reason. */
export function redactCredentials(text: string): string {
  return redactKnownSecrets(text.replace(/([a-z][a-z0-9+.-]*:\/\/)[^/@\s]+@/gi, '$1***@'));
}

/** The useful line of a git failure, without credentials, short enough for a stop reason. */
export function gitErrorDetail(error: unknown, max = 160): string {
  const raw = error instanceof Error ? error.message : String(error);
  const lines = redactCredentials(raw)
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('hint:'));
  const line = lines.find((l) => /^(fatal|error|remote|!)/i.test(l)) ?? lines[0] ?? 'git failed';
  return line.length > max ? `${line.slice(0, max - 1)}…` : line;
}

/** Every `*.lock` file under a git dir; the object store has none worth the walk. */
async function findLockFiles(dir: string): Promise<string[]> {
  const found: string[] = [];
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return found;
  }
  for (const entry of entries) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      if (entry.name !== 'objects') found.push(...(await findLockFiles(path)));
    } else if (entry.name.endsWith('.lock')) {
      found.push(path);
    }
  }
  return found;
}

function parseWorktrees(porcelain: string): WorktreeEntry[] {
  const entries: WorktreeEntry[] = [];
  for (const block of porcelain.split('\n\n')) {
    const lines = block.split('\n').filter((l) => l !== '');
    const head = lines.find((l) => l.startsWith('worktree '));
    if (!head) continue;
    const branchLine = lines.find((l) => l.startsWith('branch '));
    entries.push({
      path: head.slice('worktree '.length),
      branch: branchLine?.slice('branch refs/heads/'.length),
      detached: lines.includes('detached'),
      bare: lines.includes('bare'),
    });
  }
  return entries;
}

/**
 * The container's git workspace: the main checkout at `workspacePath` and one worktree per
 * thread under `.berth/worktrees`. Operations that touch shared repository state (worktree
 * bookkeeping, refs, fetch, push) run one at a time.
 */
export class GitWorkspace {
  readonly #path: string;
  readonly #repoUrl: string;
  readonly #workspaceBranch: string;
  readonly #userId: string;
  readonly #fallbackRefPrefix: string;
  readonly #logger: Logger;
  readonly #clock: Clock;
  readonly #lock = new KeyedSerialQueue();
  readonly #knownWorktrees = new Set<string>();
  readonly #credentialOptions: ReturnType<GitCredentials['gitOptions']>;

  constructor(options: GitWorkspaceOptions) {
    this.#path = resolve(options.workspacePath);
    this.#repoUrl = options.repoUrl;
    this.#workspaceBranch = `workspace/${options.userId}`;
    this.#userId = options.userId;
    this.#fallbackRefPrefix = options.fallbackRefPrefix;
    this.#logger = options.logger;
    this.#clock = options.clock ?? systemClock;
    this.#credentialOptions = options.credentials?.gitOptions(options.repoUrl);
  }

  get path(): string {
    return this.#path;
  }

  get fallbackRefPrefix(): string {
    return this.#fallbackRefPrefix;
  }

  get workspaceBranch(): string {
    return this.#workspaceBranch;
  }

  worktreePath(threadId: string): string {
    return worktreePathFor(this.#path, threadId);
  }

  /** The thread's branch: its user's own (`thread/<userId>/<threadRef>`). */
  branchOf(threadId: string): string {
    return threadBranch(this.#userId, threadId);
  }

  /**
   * A git client. By default (simple-git's) a command fails only when it exits non-zero AND
   * writes to stderr; `strict` fails on any non-zero exit, for commands that answer with their
   * exit code alone (`merge-base --is-ancestor`, `merge-tree`).
   */
  #git(baseDir: string = this.#path, signal?: AbortSignal, strict = false): SimpleGit {
    const credentials = this.#credentialOptions;
    const git = simpleGit({
      baseDir,
      config: credentials === undefined ? GIT_CONFIG : [...GIT_CONFIG, ...credentials.config],
      allowEnvironment: ['GIT_TERMINAL_PROMPT'],
      // Our own helper (git-credentials.ts), given per command: never from the repository.
      ...(credentials === undefined ? {} : { unsafe: { allowUnsafeCredentialHelper: true } }),
      timeout: { block: GIT_SILENCE_TIMEOUT_MS },
      ...(signal ? { abort: signal } : {}),
      ...(strict
        ? {
            errors: (
              error: Buffer | Error | undefined,
              result: { exitCode: number; stdOut: Buffer[]; stdErr: Buffer[] },
            ) =>
              error ??
              (result.exitCode === 0
                ? undefined
                : Buffer.concat([
                    ...result.stdErr,
                    ...result.stdOut,
                    Buffer.from(`exit code ${result.exitCode}`),
                  ])),
          }
        : {}),
    });
    return credentials === undefined
      ? git
      : // eslint-disable-next-line no-restricted-properties -- git inherits the agent's environment, plus its credentials
        git.env(gitProcessEnv(process.env, credentials.env));
  }

  #exclusive<T>(task: () => Promise<T>): Promise<T> {
    return this.#lock.run('repository', task);
  }

  /**
   * Makes the workspace ready: a checkout left by an earlier generation is saved first (its
   * uncommitted work committed, unpushed branches pushed; a failure is logged, not fatal), then
   * the checkout is cloned or fetched, and every thread branch is restored as its worktree.
   * Throws UnavailableError when there is no usable checkout at all.
   */
  async prepare(): Promise<PrepareResult> {
    const existing = existsSync(join(this.#path, '.git'));
    let recovery: SaveResult | undefined;
    if (existing) {
      // Before any git command: a lock left by a killed git would fail every one of them.
      await this.clearStaleLocks();
      await this.#exclusive(() =>
        this.#git().raw(['remote', 'set-url', REMOTE, this.#repoUrl]),
      ).catch((error: unknown) => {
        throw new UnavailableError(
          `cannot point the workspace at its remote: ${gitErrorDetail(error)}`,
          {
            cause: error,
          },
        );
      });
      recovery = await this.save();
      if (recovery.ok) {
        this.#logger.info(
          { committed: recovery.committed, pushed: recovery.pushed },
          'saved the work an earlier generation left in the workspace',
        );
      } else {
        this.#logger.error(
          { failures: recovery.failures, committed: recovery.committed, pushed: recovery.pushed },
          'could not push the work an earlier generation left; keeping it and going on',
        );
      }
      await this.#exclusive(() => this.#git().raw(['fetch', '--prune', REMOTE])).catch(
        (error: unknown) => {
          this.#logger.error(
            { detail: gitErrorDetail(error) },
            'fetch failed; working from the local checkout',
          );
        },
      );
    } else {
      await this.#clone();
    }
    await this.#excludeBerthDir();

    // Threads are restored when a session of this container opens them (thread.open), never
    // all at start: the worktrees an earlier generation left are removed once saved.
    const restoreFailures: PrepareResult['restoreFailures'] = [];
    const threads: string[] = [];
    if (existing && recovery?.ok) await this.#removeThreadWorktrees();
    return { mode: existing ? 'existing' : 'cloned', recovery, threads, restoreFailures };
  }

  /**
   * Removes the lock files git leaves when it is killed mid-write (`index.lock`, `HEAD.lock`,
   * `config.lock`, ref locks, in the repository and in every worktree's git dir). A lock is
   * only ever held by a live git process, and none can be running here when this is called:
   * the agent is the only writer of its workspace once the previous generation's task has
   * ended, it calls this before its own first git command or after every workload process
   * has been ended, and its own git commands wait for it (they share one queue).
   * Resolves with the locks removed, relative to the git dir.
   */
  clearStaleLocks(): Promise<string[]> {
    return this.#exclusive(async () => {
      const gitDir = join(this.#path, '.git');
      if (!existsSync(gitDir)) return [];
      const locks = await findLockFiles(gitDir);
      for (const lock of locks) await rm(lock, { force: true });
      const names = locks.map((lock) => relative(gitDir, lock)).sort();
      if (names.length > 0) this.#logger.warn({ locks: names }, 'cleared stale git locks');
      return names;
    });
  }

  async #clone(): Promise<void> {
    if (existsSync(this.#path) && (await readdir(this.#path)).length > 0) {
      throw new UnavailableError(
        `WORKSPACE_PATH ${this.#path} is not empty and holds no git checkout; refusing to clone over it`,
      );
    }
    await mkdir(dirname(this.#path), { recursive: true });
    try {
      await this.#git(dirname(this.#path)).clone(this.#repoUrl, this.#path);
    } catch (error) {
      throw new UnavailableError(`clone failed: ${gitErrorDetail(error)}`, { cause: error });
    }
    // The main checkout follows the user's own branch when an earlier container saved one.
    const remoteWorkspace = `refs/remotes/${REMOTE}/${this.#workspaceBranch}`;
    if (await this.#refExists(remoteWorkspace)) {
      await this.#git().raw([
        'checkout',
        '-b',
        this.#workspaceBranch,
        '--track',
        `${REMOTE}/${this.#workspaceBranch}`,
      ]);
    }
  }

  /** Worktrees live inside the main checkout; it must never commit them. */
  async #excludeBerthDir(): Promise<void> {
    const gitDir = (await this.#git().raw(['rev-parse', '--git-common-dir'])).trim();
    const excludeFile = join(resolve(this.#path, gitDir), 'info', 'exclude');
    const current = existsSync(excludeFile) ? await readFile(excludeFile, 'utf8') : '';
    if (current.split('\n').some((line) => line.trim() === '.berth/' || line.trim() === '/.berth/'))
      return;
    await mkdir(dirname(excludeFile), { recursive: true });
    const separator = current === '' || current.endsWith('\n') ? '' : '\n';
    await appendFile(excludeFile, `${separator}/.berth/\n`);
  }

  async #refExists(ref: string): Promise<boolean> {
    const out = await this.#git().raw(['rev-parse', '--verify', '--quiet', `${ref}^{commit}`]);
    return out.trim() !== '';
  }

  /** Thread worktrees on disk (the main checkout's excluded), by path. */
  async #threadWorktrees(): Promise<WorktreeEntry[]> {
    const entries = parseWorktrees(await this.#git().raw(['worktree', 'list', '--porcelain']));
    const root = join(this.#path, WORKTREES_DIR);
    return entries.filter((e) => !e.bare && resolve(e.path).startsWith(`${root}/`));
  }

  /** Removes every thread worktree from disk (their branches stay); only after a good save. */
  async #removeThreadWorktrees(): Promise<void> {
    await this.#exclusive(async () => {
      for (const worktree of await this.#threadWorktrees()) {
        await this.#git().raw(['worktree', 'remove', '--force', worktree.path]);
      }
      await this.#git().raw(['worktree', 'prune']);
      this.#knownWorktrees.clear();
    });
  }

  /**
   * A thread no session of this container has open any more: its work is saved, then its
   * worktree is removed from disk (its branch stays, locally and on the remote). When the save
   * fails, the worktree is kept for the stop's save to try again.
   */
  async closeThread(threadId: string): Promise<{ removed: boolean; save: SaveResult }> {
    const path = this.worktreePath(threadId);
    const save = await this.save();
    const branch = this.branchOf(threadId);
    const failed = save.failures.some((f) => f.target === path || f.target === branch);
    if (failed || !save.ok || !existsSync(path)) return { removed: false, save };
    await this.#exclusive(async () => {
      await this.#git().raw(['worktree', 'remove', '--force', path]);
      this.#knownWorktrees.delete(threadId);
    });
    this.#logger.info({ threadId, branch }, 'thread closed: saved and worktree removed');
    return { removed: true, save };
  }

  /** The commit the thread's worktree is at. */
  async head(threadId: string): Promise<string> {
    return (await this.#git(this.worktreePath(threadId)).raw(['rev-parse', 'HEAD'])).trim();
  }

  /** The commit a new thread starts from: the remote's default branch, when there is one. */
  async #defaultBase(): Promise<string | undefined> {
    for (const ref of [
      `refs/remotes/${REMOTE}/HEAD`,
      `refs/remotes/${REMOTE}/main`,
      `refs/remotes/${REMOTE}/master`,
      'HEAD',
    ]) {
      const out = (
        await this.#git().raw(['rev-parse', '--verify', '--quiet', `${ref}^{commit}`])
      ).trim();
      if (out !== '') return out;
    }
    return undefined;
  }

  /**
   * The thread's worktree, made when missing: from its local branch, else from the remote
   * branch, else from the default branch's head (an empty root commit in an empty repository).
   */
  async ensureWorktree(threadId: string): Promise<string> {
    const path = this.worktreePath(threadId);
    if (this.#knownWorktrees.has(threadId) && existsSync(join(path, '.git'))) return path;
    return this.#exclusive(async () => {
      if (existsSync(join(path, '.git'))) {
        this.#knownWorktrees.add(threadId);
        return path;
      }
      const git = this.#git();
      // A worktree whose directory was removed still holds its branch until pruned.
      await git.raw(['worktree', 'prune']);
      const branch = this.branchOf(threadId);
      const legacy = legacyThreadBranch(threadId);
      if (await this.#refExists(`refs/heads/${branch}`)) {
        await git.raw(['worktree', 'add', path, branch]);
      } else if (await this.#refExists(`refs/remotes/${REMOTE}/${branch}`)) {
        await git.raw(['worktree', 'add', '--track', '-b', branch, path, `${REMOTE}/${branch}`]);
      } else if (await this.#refExists(`refs/remotes/${REMOTE}/${legacy}`)) {
        // A thread from before branches belonged to their user: read once, never written.
        await git.raw(['worktree', 'add', '--no-track', '-b', branch, path, `${REMOTE}/${legacy}`]);
      } else {
        const base = await this.#defaultBase();
        if (base !== undefined) {
          await git.raw(['worktree', 'add', '--no-track', '-b', branch, path, base]);
        } else {
          const root = (
            await git.raw(['commit-tree', EMPTY_TREE, '-m', `berth: start thread ${threadId}`])
          ).trim();
          await git.raw(['branch', branch, root]);
          await git.raw(['worktree', 'add', path, branch]);
        }
      }
      this.#knownWorktrees.add(threadId);
      this.#logger.info({ threadId, branch, worktreePath: path }, 'thread worktree ready');
      return path;
    });
  }

  /** Files a checkpoint names at most; the rest are counted, not listed. */
  static readonly CHECKPOINT_FILES_LIMIT = 100;

  /**
   * After a workload run: commits what it left uncommitted in the thread's worktree (message
   * naming the input message) and answers the checkpoint, the thread's head when it moved
   * since `before` (a workload that commits by itself makes a checkpoint too), else undefined.
   */
  checkpoint(
    threadId: string,
    before: string,
    message: string,
  ): Promise<{ commit: string; files: string[]; filesTotal: number } | undefined> {
    return this.#exclusive(async () => {
      const git = this.#git(this.worktreePath(threadId));
      if (await this.#isDirty(git)) await this.#commitAll(git, message);
      const head = (await git.raw(['rev-parse', 'HEAD'])).trim();
      if (head === before) return undefined;
      const changed = (await git.raw(['diff', '--name-only', '-z', before, head]))
        .split('\0')
        .filter((name) => name !== '');
      return {
        commit: head,
        files: changed.slice(0, GitWorkspace.CHECKPOINT_FILES_LIMIT),
        filesTotal: changed.length,
      };
    });
  }

  /**
   * A new commit on the thread's branch whose tree is `target`'s (history is kept: nothing is
   * rewritten). Work left uncommitted is committed first, so it stays in the history too.
   * Throws when `target` is not a commit of this repository.
   */
  revertTo(
    threadId: string,
    target: string,
    message: string,
  ): Promise<{ commit: string; files: string[]; filesTotal: number; before: string }> {
    return this.#exclusive(async () => {
      const git = this.#git(this.worktreePath(threadId));
      if (await this.#isDirty(git)) await this.#commitAll(git, `${message} (work left before it)`);
      const before = (await git.raw(['rev-parse', 'HEAD'])).trim();
      const tree = (await git.raw(['rev-parse', '--verify', '--quiet', `${target}^{tree}`])).trim();
      if (tree === '') throw new UnavailableError(`checkpoint ${target} is not in this workspace`);
      const commit = (await git.raw(['commit-tree', tree, '-p', before, '-m', message])).trim();
      await git.raw(['read-tree', '-u', '--reset', commit]);
      await git.raw(['update-ref', '-m', message, 'HEAD', commit, before]);
      const changed = (await git.raw(['diff', '--name-only', '-z', before, commit]))
        .split('\0')
        .filter((name) => name !== '');
      return {
        commit,
        before,
        files: changed.slice(0, GitWorkspace.CHECKPOINT_FILES_LIMIT),
        filesTotal: changed.length,
      };
    });
  }

  /**
   * Pushes the given branches now (a checkpoint's push). A branch the remote moved under is
   * merged or sent to its fallback ref, as the stop's save does.
   */
  pushBranches(branches: readonly string[], signal?: AbortSignal): Promise<SaveResult> {
    return this.#exclusive(async () => {
      const result = emptySaveResult();
      const wanted = [...new Set(branches)].sort();
      if (wanted.length > 0) {
        await this.#pushAndLand(wanted, result, signal, async () => {
          try {
            return parseWorktrees(
              await this.#git(this.#path, signal).raw(['worktree', 'list', '--porcelain']),
            );
          } catch {
            // Without the list a merge has no worktree to run in; landRejected says so.
            return [];
          }
        });
      }
      result.ok = result.failures.length === 0;
      return result;
    });
  }

  /**
   * Commits every worktree with changes (untracked files included), the main checkout onto
   * `workspace/<userId>`, and pushes every branch with unpushed commits. Goes as far as it can:
   * one failure does not stop the rest, and every failure is in the result.
   */
  save(signal?: AbortSignal): Promise<SaveResult> {
    return this.#exclusive(async () => {
      const result = emptySaveResult();
      const fail = (step: SaveFailure['step'], target: string, error: unknown): void => {
        result.failures.push({ step, target, detail: gitErrorDetail(error) });
      };
      const git = this.#git(this.#path, signal);

      let worktrees: WorktreeEntry[] = [];
      try {
        worktrees = parseWorktrees(await git.raw(['worktree', 'list', '--porcelain']));
      } catch (error) {
        fail('inspect', this.#path, error);
      }

      for (const worktree of worktrees) {
        if (worktree.bare || resolve(worktree.path) === this.#path || !existsSync(worktree.path))
          continue;
        try {
          if (await this.#commitWorktree(worktree, signal)) result.committed.push(worktree.path);
        } catch (error) {
          fail('commit', worktree.path, error);
        }
      }
      try {
        if (await this.#commitMainCheckout(signal)) result.committed.push(this.#path);
      } catch (error) {
        fail('commit', this.#path, error);
      }

      try {
        const branches = await this.#unpushedBranches(signal);
        if (branches.length > 0)
          await this.#pushAndLand(branches, result, signal, () => Promise.resolve(worktrees));
      } catch (error) {
        fail('inspect', REMOTE, error);
      }

      result.ok = result.failures.length === 0;
      return result;
    });
  }

  /**
   * Pushes the branches in one push; when it is refused, lands each branch it left behind
   * (merged with the remote's, or sent to its fallback ref). Failures go into the result.
   */
  async #pushAndLand(
    branches: string[],
    result: SaveResult,
    signal: AbortSignal | undefined,
    worktrees: () => Promise<WorktreeEntry[]>,
  ): Promise<void> {
    try {
      await this.#git(this.#path, signal).raw([
        'push',
        '--no-verify',
        '--porcelain',
        REMOTE,
        ...branches.map((b) => `refs/heads/${b}:refs/heads/${b}`),
      ]);
      result.pushed.push(...branches);
    } catch (error) {
      // Some refs may have gone through; the remote-tracking refs tell which did not.
      const unpushed = await this.#unpushedBranches(signal).catch(() => branches);
      const left = branches.filter((b) => unpushed.includes(b));
      result.pushed.push(...branches.filter((b) => !left.includes(b)));
      await this.#landRejected(left, await worktrees(), result, error, signal);
    }
  }

  /** Each branch the push left behind: merged and pushed, or pushed to its fallback ref. */
  async #landRejected(
    branches: string[],
    worktrees: WorktreeEntry[],
    result: SaveResult,
    pushError: unknown,
    signal?: AbortSignal,
  ): Promise<void> {
    if (branches.length === 0) {
      result.failures.push({ step: 'push', target: REMOTE, detail: gitErrorDetail(pushError) });
      return;
    }
    const context: RejectedPushContext = {
      remote: REMOTE,
      git: (dir) => this.#git(dir ?? this.#path, signal, true),
      worktreeOf: (branch) =>
        worktrees.find((w) => w.branch === branch && existsSync(w.path))?.path,
      fallbackPrefix: this.#fallbackRefPrefix,
    };
    for (const branch of branches) {
      try {
        const landing = await landRejectedPush(context, branch);
        if (landing.outcome === 'fallback') {
          result.fallbacks.push({ branch, ref: landing.ref });
          this.#logger.warn(
            { branch, ref: landing.ref },
            'the remote moved under the branch and the work does not merge: pushed to its fallback ref',
          );
        } else {
          result.pushed.push(branch);
          if (landing.outcome === 'merged') result.merged.push(branch);
        }
      } catch (error) {
        result.failures.push({ step: 'push', target: branch, detail: gitErrorDetail(error) });
      }
    }
  }

  async #isDirty(git: SimpleGit): Promise<boolean> {
    return (await git.raw(['status', '--porcelain', '--untracked-files=all'])).trim() !== '';
  }

  async #commitAll(git: SimpleGit, message: string): Promise<void> {
    await git.raw(['add', '-A']);
    await git.raw(['commit', '--no-verify', '--quiet', '-m', message]);
  }

  async #commitWorktree(worktree: WorktreeEntry, signal?: AbortSignal): Promise<boolean> {
    const git = this.#git(worktree.path, signal);
    if (!(await this.#isDirty(git))) return false;
    const at = this.#clock.now().toISOString();
    if (worktree.branch?.startsWith(THREAD_PREFIX)) {
      const ref = worktree.branch.slice(THREAD_PREFIX.length);
      const own = `${this.#userId}/`;
      const threadId = threadIdOfRef(ref.startsWith(own) ? ref.slice(own.length) : ref);
      await this.#commitAll(git, `berth: save thread ${threadId} at ${at}`);
      return true;
    }
    await this.#commitAll(git, `berth: save worktree ${worktree.branch ?? worktree.path} at ${at}`);
    if (worktree.detached) {
      // A commit on a detached head belongs to no branch and would never be pushed.
      const name = (worktree.path.split('/').pop() ?? 'worktree').replace(/[^A-Za-z0-9._-]/g, '-');
      const rescue = `berth-rescue/${name}-${Date.parse(at)}`;
      await git.raw(['branch', rescue, 'HEAD']);
    }
    return true;
  }

  async #commitMainCheckout(signal?: AbortSignal): Promise<boolean> {
    const git = this.#git(this.#path, signal);
    if (!(await this.#isDirty(git))) return false;
    const current = (await git.raw(['symbolic-ref', '--quiet', '--short', 'HEAD'])).trim();
    if (current !== this.#workspaceBranch) {
      if (!(await this.#refExists(`refs/heads/${this.#workspaceBranch}`))) {
        // Carries the uncommitted changes over to the new branch.
        await git.raw(['checkout', '-b', this.#workspaceBranch]);
      } else if (current === '') {
        await git.raw([
          'checkout',
          '-b',
          `${this.#workspaceBranch}-${this.#clock.now().getTime()}`,
        ]);
      }
      // Otherwise the workload moved the main checkout to a branch of its own: commit there.
    }
    await this.#commitAll(git, `berth: save workspace at ${this.#clock.now().toISOString()}`);
    return true;
  }

  /** Local branches whose commits the remote (as last fetched or pushed) does not have. */
  async #unpushedBranches(signal?: AbortSignal): Promise<string[]> {
    const git = this.#git(this.#path, signal);
    const out = await git.raw([
      'for-each-ref',
      '--format=%(refname) %(objectname)',
      'refs/heads',
      `refs/remotes/${REMOTE}`,
    ]);
    const local = new Map<string, string>();
    const remote = new Map<string, string>();
    for (const line of out.split('\n')) {
      const [ref, sha] = line.trim().split(' ');
      if (!ref || !sha) continue;
      if (ref.startsWith('refs/heads/')) local.set(ref.slice('refs/heads/'.length), sha);
      else remote.set(ref.slice(`refs/remotes/${REMOTE}/`.length), sha);
    }
    const unpushed: string[] = [];
    for (const [branch, sha] of local) {
      const remoteSha = remote.get(branch);
      if (remoteSha === sha) continue;
      if (remoteSha === undefined) {
        unpushed.push(branch);
        continue;
      }
      const ahead = Number((await git.raw(['rev-list', '--count', `${remoteSha}..${sha}`])).trim());
      if (ahead > 0) unpushed.push(branch);
    }
    return unpushed.sort();
  }
}

function emptySaveResult(): SaveResult {
  return { ok: true, committed: [], pushed: [], merged: [], fallbacks: [], failures: [] };
}
