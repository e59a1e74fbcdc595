/**
 * Every DynamoDB failure leaves this adapter as a domain error: a lost condition is a
 * StaleWriteError (the caller re-reads and decides again), anything else is an
 * UnavailableError, worth retrying, that keeps the SDK error as its cause.
 */
import { StaleWriteError, UnavailableError, isBerthError, type BerthError } from '@berth/domain';

export interface ErrorContext {
  operation: string;
  /** The table(s) the request touched; a missing table is named in the message. */
  table: string | readonly string[];
}

/** Codes in a TransactionCanceledException that mean another writer got there first. */
const LOST_RACE_CODES = new Set(['ConditionalCheckFailed', 'TransactionConflict']);

export function errorName(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const name = (error as { name?: unknown }).name;
  return typeof name === 'string' ? name : undefined;
}

function errorMessage(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}

function cancellationCodes(error: unknown): string[] {
  const reasons = (error as { CancellationReasons?: unknown }).CancellationReasons;
  if (!Array.isArray(reasons)) return [];
  return reasons.map((reason: unknown) => {
    const code = (reason as { Code?: unknown } | null)?.Code;
    return typeof code === 'string' ? code : 'None';
  });
}

export function toDomainError(error: unknown, context: ErrorContext): BerthError {
  if (isBerthError(error)) return error;
  const tables = typeof context.table === 'string' ? context.table : context.table.join(', ');
  const where = `DynamoDB ${context.operation} on ${tables}`;
  const name = errorName(error) ?? 'Error';
  switch (name) {
    case 'ConditionalCheckFailedException':
      return new StaleWriteError(`${where}: a condition no longer holds`, { cause: error });
    case 'TransactionConflictException':
      return new StaleWriteError(`${where}: conflicted with a concurrent transaction`, {
        cause: error,
      });
    case 'TransactionCanceledException': {
      const codes = cancellationCodes(error);
      if (codes.some((code) => LOST_RACE_CODES.has(code))) {
        return new StaleWriteError(`${where}: transaction cancelled (${codes.join(', ')})`, {
          cause: error,
        });
      }
      return new UnavailableError(
        `${where}: transaction cancelled (${codes.join(', ') || 'no reasons'}): ${errorMessage(error)}`,
        { cause: error },
      );
    }
    case 'ResourceNotFoundException':
      return new UnavailableError(`${where}: table or index not found (${tables})`, {
        cause: error,
      });
    case 'ValidationException':
      // A request DynamoDB refuses is a bug here; the message says what to fix.
      return new UnavailableError(`${where} was rejected: ${errorMessage(error)}`, {
        cause: error,
      });
    default:
      return new UnavailableError(`${where} failed: ${name}: ${errorMessage(error)}`, {
        cause: error,
      });
  }
}
