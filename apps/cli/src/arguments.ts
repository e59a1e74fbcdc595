import { assertIdPart, assertOpaqueId } from '@berth/domain';
import { InvalidArgumentError } from 'commander';

/** Wraps commander's parsers so a bad argument names itself and exits with 2. */
function named<T>(check: (value: string) => T) {
  return (value: string): T => {
    try {
      return check(value);
    } catch (error) {
      throw new InvalidArgumentError((error as Error).message);
    }
  };
}

export const idPart = (field: 'clientId' | 'projectId' | 'userId') =>
  named((value) => assertIdPart(field, value));

export const opaqueId = (field: string) => named((value) => assertOpaqueId(field, value));

export const integer = (min: number, max: number) => (value: string) => {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < min || n > max)
    throw new InvalidArgumentError(`must be a whole number from ${min} to ${max}`);
  return n;
};
