import { FALLBACK_REF_ROOT } from '@berth/domain';

/**
 * `container.stopped`'s `savedElsewhere`: the branches whose work the agent pushed to fallback
 * refs (the remote had moved under them and the two did not merge), and where.
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

// The root is letters and slashes only: nothing in it needs escaping in a pattern.
const SAVED_ELSEWHERE = new RegExp(`^saved_elsewhere:(${FALLBACK_REF_ROOT}\\S+/)((?: \\S+)*)$`);

/** Reads the agent's `saved_elsewhere:<prefix> <branch>... [+N more]`; undefined for any other reason. */
export function parseSavedElsewhere(stoppedReason: string | undefined): SavedElsewhere | undefined {
  const match = stoppedReason === undefined ? null : SAVED_ELSEWHERE.exec(stoppedReason);
  if (!match) return undefined;
  const refPrefix = match[1] as string;
  const words = (match[2] ?? '').split(' ').filter((word) => word !== '');
  const complete = !words.includes('more') || !words.some((word) => /^\+\d+$/.test(word));
  const branches = complete ? words : words.slice(0, -2);
  return { refPrefix, branches, refs: branches.map((b) => `${refPrefix}${b}`), complete };
}
