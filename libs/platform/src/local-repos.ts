/**
 * The local stack's project repositories: one bare repository per project under
 * `<data>/repos/<clientId>/<projectId>.git`, created on first use with an initial commit on
 * `main` so that clones and worktrees always have a base to start from.
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rename, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';

export const DEFAULT_BRANCH = 'main';

const GIT_IDENTITY = {
  GIT_AUTHOR_NAME: 'berth',
  GIT_AUTHOR_EMAIL: 'berth@localhost',
  GIT_COMMITTER_NAME: 'berth',
  GIT_COMMITTER_EMAIL: 'berth@localhost',
};

export function git(args: string[], input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      'git',
      args,
      // eslint-disable-next-line no-restricted-properties -- git inherits this process's environment (PATH, HOME)
      { env: { ...process.env, ...GIT_IDENTITY }, maxBuffer: 1024 * 1024 },
      (error, stdout, stderr) => {
        if (error) {
          reject(
            new Error(`git ${args.join(' ')} failed: ${stderr.trim() || error.message}`, {
              cause: error,
            }),
          );
        } else {
          resolve(stdout.trim());
        }
      },
    );
    // A git command that reads no input may exit before we finish writing: its exit status
    // is what counts, not the broken pipe.
    child.stdin?.on('error', () => {});
    if (input === undefined) child.stdin?.end();
    else child.stdin?.end(input);
  });
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

async function hasBranch(gitDir: string, branch: string): Promise<boolean> {
  if (!(await exists(gitDir))) return false;
  return git([
    '--git-dir',
    gitDir,
    'rev-parse',
    '--verify',
    '--quiet',
    `refs/heads/${branch}^{commit}`,
  ]).then(
    () => true,
    () => false,
  );
}

/**
 * Writes a README commit with plumbing commands, so no working tree is needed, and points
 * `main` at it only if `main` does not exist yet (the empty old value makes update-ref refuse).
 */
async function commitReadme(gitDir: string, clientId: string, projectId: string): Promise<void> {
  const readme = `# ${projectId}\n\nThe repository of project \`${projectId}\` of client \`${clientId}\`, kept by berth.\n`;
  const blob = await git(['--git-dir', gitDir, 'hash-object', '-w', '--stdin'], readme);
  const tree = await git(['--git-dir', gitDir, 'mktree'], `100644 blob ${blob}\tREADME.md\n`);
  const commit = await git(['--git-dir', gitDir, 'commit-tree', tree, '-m', 'Initial commit']);
  await git(['--git-dir', gitDir, 'update-ref', `refs/heads/${DEFAULT_BRANCH}`, commit, '']);
}

export class BareRepositories {
  readonly #root: string;
  /** One creation at a time per repository in this process; rename() settles races with others. */
  readonly #inFlight = new Map<string, Promise<{ path: string; created: boolean }>>();

  /** `root` is `<data>/repos`. */
  constructor(root: string) {
    this.#root = root;
  }

  pathFor(clientId: string, projectId: string): string {
    return join(this.#root, clientId, `${projectId}.git`);
  }

  /** Callers pass ids already checked against the contract's pattern: they become path parts. */
  ensure(clientId: string, projectId: string): Promise<{ path: string; created: boolean }> {
    const path = this.pathFor(clientId, projectId);
    const running = this.#inFlight.get(path);
    if (running) return running;
    const attempt = this.create(path, clientId, projectId).finally(() =>
      this.#inFlight.delete(path),
    );
    this.#inFlight.set(path, attempt);
    return attempt;
  }

  private async create(
    path: string,
    clientId: string,
    projectId: string,
  ): Promise<{ path: string; created: boolean }> {
    if (await hasBranch(path, DEFAULT_BRANCH)) return { path, created: false };
    await mkdir(dirname(path), { recursive: true });
    if (await exists(path)) {
      // A repository made some other way, without a main branch yet: give it its base.
      await commitReadme(path, clientId, projectId);
      return { path, created: true };
    }
    // Built aside and moved into place in one step, so a crash never leaves a half-made
    // repository where the agent would clone it.
    const staging = await mkdtemp(join(dirname(path), `.${projectId}.git-`));
    try {
      await git(['init', '--quiet', '--bare', `--initial-branch=${DEFAULT_BRANCH}`, staging]);
      await commitReadme(staging, clientId, projectId);
      await rename(staging, path);
      return { path, created: true };
    } catch (error) {
      await rm(staging, { recursive: true, force: true });
      if (await hasBranch(path, DEFAULT_BRANCH)) return { path, created: false };
      throw error;
    }
  }
}
