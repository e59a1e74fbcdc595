import {
  InvalidArgumentError,
  UnavailableError,
  isBerthError,
  type BerthError,
} from '@berth/domain';
import { RATE_EXCEEDED } from './client.ts';

/** Bad parameters are not worth retrying; everything else (throttles included) may pass later. */
const BAD_INPUT = new Set(['ClientException', 'InvalidParameterException']);

export function toDomainError(error: unknown, operation: string): BerthError {
  if (isBerthError(error)) return error;
  const name = error instanceof Error ? error.name : 'Error';
  const message = error instanceof Error ? error.message : String(error);
  if (BAD_INPUT.has(name) && !RATE_EXCEEDED.test(message)) {
    return new InvalidArgumentError(
      `ECS ${operation} refused the request: ${name}: ${message}`,
      undefined,
      {
        cause: error,
      },
    );
  }
  return new UnavailableError(`ECS ${operation} failed: ${name}: ${message}`, { cause: error });
}

export function errorName(error: unknown): string | undefined {
  return error instanceof Error ? error.name : undefined;
}
