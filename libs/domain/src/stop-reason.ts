export const STOP_REASON_KINDS = [
  'idle',
  'manual',
  'save_failed',
  'forced',
  'crashed',
  'lost',
  'start_failed',
  'max_lifetime',
] as const;
export type StopReasonKind = (typeof STOP_REASON_KINDS)[number];

/**
 * Why a container stopped. Records, events and the API carry it as the contract's text,
 * `kind` or `kind:detail` (`formatStopReason`); code works with this value and reads the text
 * back with `parseStopReason`, the only place that knows the text's shape.
 */
export interface StopReason {
  kind: StopReasonKind;
  /** Free text: a save's error, an exit code, an operator's words. */
  detail?: string;
}

const MAX_DETAIL = 200;

/** A stop reason with its detail on one line and trimmed to keep records small. */
export function stopReason(kind: StopReasonKind, detail?: string): StopReason {
  const clean = detail
    ?.replace(/[\r\n]+/g, ' ')
    .trim()
    .slice(0, MAX_DETAIL);
  return clean ? { kind, detail: clean } : { kind };
}

/** The contract's text: `kind`, or `kind:detail`. */
export function formatStopReason(reason: StopReason): string {
  return reason.detail ? `${reason.kind}:${reason.detail}` : reason.kind;
}

/**
 * Reads a stop reason's text back (`formatStopReason`'s inverse, detail kept as written).
 * Undefined for no text or a kind the contract does not name (e.g. a runtime's own words).
 */
export function parseStopReason(text: string | null | undefined): StopReason | undefined {
  if (!text) return undefined;
  const colon = text.indexOf(':');
  const kind = colon === -1 ? text : text.slice(0, colon);
  if (!isStopReasonKind(kind)) return undefined;
  const detail = colon === -1 ? '' : text.slice(colon + 1);
  return detail ? { kind, detail } : { kind };
}

function isStopReasonKind(text: string): text is StopReasonKind {
  return (STOP_REASON_KINDS as readonly string[]).includes(text);
}

/**
 * The workspace agent's exit code (EX_TEMPFAIL) when it could not save its workspace; on ECS,
 * where the agent has no channel to tell its reason, the task's end says only this.
 */
export const SAVE_FAILED_EXIT_CODE = 75;

/** A process ended by SIGKILL, as a container runtime reports it (128 + 9). */
export const SIGKILL_EXIT_CODE = 137;

/** Where the agent keeps work that could not merge with its remote: one folder per generation. */
export const FALLBACK_REF_ROOT = 'refs/berth/conflicts/';

/** The ref prefix under which one container generation's unmergeable work is kept. */
export function fallbackRefPrefix(containerId: string, generation: number | undefined): string {
  return `${FALLBACK_REF_ROOT}${containerId}/${generation ?? 0}/`;
}
