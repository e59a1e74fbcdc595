import { FALLBACK_REF_ROOT } from './stop-reason.ts';

/**
 * `saved_elsewhere:<fallback prefix> <branch>... [+N more]`: the agent's stop reason when some
 * work is on fallback refs rather than its branches (the remote had moved under them and the
 * two did not merge). The agent formats it, the core reads it from the task's stopped reason;
 * both through this module.
 */
export interface SavedElsewhere {
  /** `refs/berth/conflicts/<containerId>/<generation>/`: every fallback ref of the generation. */
  refPrefix: string;
  /** The branches named by the agent (all of them when `complete`). */
  branches: string[];
  /** `refPrefix` + each branch: the refs in the project's repository that hold the work. */
  refs: string[];
  /** False when the stop reason had no room for every branch; `refPrefix` still finds them all. */
  complete: boolean;
}

/** What a stop reason can carry (ECS's limit on a task's stoppedReason). */
export const STOPPED_REASON_LIMIT = 255;

/**
 * The agent's stop reason for work kept on fallback refs. Branches that do not fit the limit
 * are counted (`+N more`); the prefix alone finds them all in the repository.
 */
export function formatSavedElsewhere(prefix: string, branches: readonly string[]): string {
  let reason = `saved_elsewhere:${prefix}`;
  for (const [index, branch] of branches.entries()) {
    const more = branches.length - index - 1;
    const tail = more > 0 ? ` +${more} more` : '';
    if (reason.length + 1 + branch.length + tail.length > STOPPED_REASON_LIMIT) {
      return `${reason} +${branches.length - index} more`;
    }
    reason += ` ${branch}`;
  }
  return reason;
}

// The root is letters and slashes only: nothing in it needs escaping in a pattern.
const SAVED_ELSEWHERE = new RegExp(`^saved_elsewhere:(${FALLBACK_REF_ROOT}\\S+/)((?: \\S+)*)$`);

/** Reads a `saved_elsewhere:` stop reason; undefined for any other reason. */
export function parseSavedElsewhere(stoppedReason: string | undefined): SavedElsewhere | undefined {
  const match = stoppedReason === undefined ? null : SAVED_ELSEWHERE.exec(stoppedReason);
  if (!match) return undefined;
  const refPrefix = match[1] as string;
  const words = (match[2] ?? '').split(' ').filter((word) => word !== '');
  const complete = !words.includes('more') || !words.some((word) => /^\+\d+$/.test(word));
  const branches = complete ? words : words.slice(0, -2);
  return { refPrefix, branches, refs: branches.map((b) => `${refPrefix}${b}`), complete };
}
