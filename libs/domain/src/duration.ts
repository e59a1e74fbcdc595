import { InvalidArgumentError } from './errors.ts';

const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
const DURATION = /^(\d+)(ms|s|m|h|d)$/;

/**
 * `250ms`, `5s`, `20m`, `2h`, `1d`: a whole number and one unit, nothing else. Strict on
 * purpose (no `1.5h`, no `20 minutes`, no bare numbers) so that a typo in a timeout fails
 * at start instead of meaning something else.
 */
export function parseDuration(text: string, field = 'duration'): number {
  const match = DURATION.exec(text.trim());
  if (!match) {
    throw new InvalidArgumentError(
      `${field} must be a whole number followed by ms, s, m, h or d (e.g. 250ms, 5s, 20m, 2h); got "${text}"`,
      field,
    );
  }
  const amount = Number(match[1]);
  const ms = amount * UNIT_MS[match[2] as keyof typeof UNIT_MS];
  if (!Number.isSafeInteger(ms)) {
    throw new InvalidArgumentError(`${field} is too large: "${text}"`, field);
  }
  return ms;
}

export function formatDuration(ms: number): string {
  for (const unit of ['d', 'h', 'm', 's'] as const) {
    if (ms !== 0 && ms % UNIT_MS[unit] === 0) return `${ms / UNIT_MS[unit]}${unit}`;
  }
  return `${ms}ms`;
}
