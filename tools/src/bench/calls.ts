/**
 * Calls per operation, counted by the AWS SDK middleware every berth process installs when
 * BERTH_AWS_CALL_LOG names a file (`@berth/platform`'s call recorder, one JSON line per call).
 * A benchmark gives its services a call log, notes where the log stood before a measured
 * phase, and divides the calls made during it by the operations it completed, so that a
 * regression in the number of calls shows even where timings are noisy.
 */
import type { AwsCallRecord } from '@berth/platform';
import { existsSync, readFileSync } from 'node:fs';

export const ENGINES = ['dynamodb', 'sqs', 'sns', 'ecs'] as const;
export type Engine = (typeof ENGINES)[number];

/** Calls per completed operation, by engine and by API operation (`dynamodb:GetItem`). */
export interface CallsPerOperation {
  operations: number;
  byEngine: Record<Engine, number>;
  byOperation: Record<string, number>;
}

/** The environment that makes a berth process record its calls into `file`. */
export function callLogEnv(file: string): Record<string, string> {
  // The recorder writes ARNs with an account; a local run has none, so a placeholder one.
  return { BERTH_AWS_CALL_LOG: file, BERTH_REHEARSAL_ACCOUNT: '000000000000' };
}

function records(file: string): AwsCallRecord[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as AwsCallRecord);
}

/** Where the log stands now: calls recorded so far. */
export function callMark(file: string): number {
  return records(file).length;
}

/**
 * The calls recorded since `mark` that `include` keeps, divided by `operations`.
 * `include` leaves out what is not the measured path (a long poll of a background feed).
 */
export function callsSince(
  file: string,
  mark: number,
  operations: number,
  include: (call: AwsCallRecord) => boolean = () => true,
): CallsPerOperation {
  const calls = records(file).slice(mark).filter(include);
  const byEngine = Object.fromEntries(ENGINES.map((engine) => [engine, 0])) as Record<
    Engine,
    number
  >;
  const byOperation: Record<string, number> = {};
  for (const call of calls) {
    const engine = call.operation.split(':')[0] as Engine;
    if (engine in byEngine) byEngine[engine] += 1;
    byOperation[call.operation] = (byOperation[call.operation] ?? 0) + 1;
  }
  // Two decimals, except for a rare call that two would show as 0 (a background long poll
  // caught in the window): four, so that it reads as rare rather than absent.
  const per = (count: number) => {
    if (operations <= 0) return Number.NaN;
    const value = Math.round((count / operations) * 100) / 100;
    return value === 0 && count > 0 ? Math.round((count / operations) * 10_000) / 10_000 : value;
  };
  return {
    operations,
    byEngine: Object.fromEntries(
      Object.entries(byEngine).map(([engine, count]) => [engine, per(count)]),
    ) as Record<Engine, number>,
    byOperation: Object.fromEntries(
      Object.entries(byOperation)
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([operation, count]) => [operation, per(count)]),
    ),
  };
}

/** `dynamodb 1 · sqs 0 · sns 0 · ecs 0 (dynamodb:GetItem 1)` */
export function describeCalls(calls: CallsPerOperation | undefined): string {
  if (!calls) return 'not counted';
  const engines = ENGINES.map((engine) => `${engine} ${calls.byEngine[engine]}`).join(' · ');
  const operations = Object.entries(calls.byOperation)
    .map(([operation, count]) => `${operation} ${count}`)
    .join(', ');
  return `${engines}${operations ? ` (${operations})` : ''}`;
}
