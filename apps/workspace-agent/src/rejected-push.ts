import type { SimpleGit } from 'simple-git';

/** Where the work of a branch whose push was rejected ended up. */
export type Landing =
  | { branch: string; outcome: 'pushed' }
  | { branch: string; outcome: 'merged' }
  | { branch: string; outcome: 'fallback'; ref: string };

export interface RejectedPushContext {
  remote: string;
  /** A git client in `dir` (the main checkout when undefined). */
  git: (dir?: string) => SimpleGit;
  /** The worktree that has the branch checked out, if any (the main checkout included). */
  worktreeOf: (branch: string) => string | undefined;
  /** `refs/berth/conflicts/<containerId>/<generation>/`: where work that cannot merge goes. */
  fallbackPrefix: string;
}

/** A lost race with another writer is tried again this often before the work goes to its fallback. */
const MAX_MERGE_ROUNDS = 3;

async function isAncestor(git: SimpleGit, ancestor: string, of: string): Promise<boolean> {
  try {
    await git.raw(['merge-base', '--is-ancestor', ancestor, of]);
    return true;
  } catch {
    return false;
  }
}

async function push(git: SimpleGit, remote: string, refspec: string): Promise<boolean> {
  try {
    await git.raw(['push', '--no-verify', '--porcelain', remote, refspec]);
    return true;
  } catch {
    return false;
  }
}

/**
 * Merges the remote's branch into the local one. In the worktree that has it checked out, so
 * its files follow (no workload runs at a save); elsewhere without a worktree, through
 * `merge-tree`. Resolves false, with nothing changed, when the merge does not go cleanly.
 */
async function merge(
  context: RejectedPushContext,
  branch: string,
  theirs: string,
): Promise<boolean> {
  const message = `berth: merge ${context.remote}/${branch} (the remote moved while this container worked)`;
  const worktree = context.worktreeOf(branch);
  if (worktree !== undefined) {
    const git = context.git(worktree);
    try {
      await git.raw(['merge', '--no-edit', '--no-verify', '-m', message, theirs]);
      return true;
    } catch {
      await git.raw(['merge', '--abort']).catch(() => undefined);
      return false;
    }
  }
  const git = context.git();
  let tree: string;
  try {
    tree = (await git.raw(['merge-tree', '--write-tree', `refs/heads/${branch}`, theirs]))
      .split('\n')[0]
      ?.trim() as string;
  } catch {
    return false;
  }
  const ours = (await git.raw(['rev-parse', `refs/heads/${branch}`])).trim();
  const commit = (
    await git.raw(['commit-tree', tree, '-p', ours, '-p', theirs, '-m', message])
  ).trim();
  await git.raw(['update-ref', `refs/heads/${branch}`, commit, ours]);
  return true;
}

/**
 * Lands the work of a branch whose push was rejected. When the remote moved under it (another
 * writer, a diverged base), the remote's branch is fetched and merged in, and the result
 * pushed: a merge, not a rebase, because the question is whether the two ends merge, which a
 * rebase answers commit by commit (conflicting where the ends do not), and because it never
 * rewrites commits a workload may have recorded. When the merge does not go cleanly, or the
 * other writer keeps winning the race, the work is pushed to its fallback ref instead, so it
 * never lives only on this disk; the branch on the remote is left as the other writer made it.
 * Throws when the remote cannot be reached or refuses even the fallback: a real save failure.
 */
export async function landRejectedPush(
  context: RejectedPushContext,
  branch: string,
): Promise<Landing> {
  const { remote } = context;
  const git = context.git();
  const tracking = `refs/remotes/${remote}/${branch}`;
  for (let round = 1; round <= MAX_MERGE_ROUNDS; round += 1) {
    await git.raw(['fetch', '--no-tags', remote, `+refs/heads/${branch}:${tracking}`]);
    const local = `refs/heads/${branch}`;
    if (await isAncestor(git, local, tracking)) {
      // The remote has all of it already (someone pushed it, or this is behind): nothing to land.
      return { branch, outcome: 'pushed' };
    }
    const merged = !(await isAncestor(git, tracking, local));
    if (merged && !(await merge(context, branch, tracking))) break;
    if (await push(git, remote, `${local}:${local}`)) {
      await git.raw(['fetch', '--no-tags', remote, `+${local}:${tracking}`]).catch(() => undefined);
      return { branch, outcome: merged ? 'merged' : 'pushed' };
    }
  }
  const ref = `${context.fallbackPrefix}${branch}`;
  // Forced: the ref is this generation's own, and always holds the branch's latest work.
  await git.raw(['push', '--no-verify', '--porcelain', remote, `+refs/heads/${branch}:${ref}`]);
  return { branch, outcome: 'fallback', ref };
}
