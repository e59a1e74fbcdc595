import type { TSchema } from 'typebox';
import { Compile } from 'typebox/compile';
import { InvalidArgumentError } from './errors.ts';

interface SchemaError {
  keyword: string;
  instancePath: string;
  params: Record<string, unknown>;
  message: string;
}

/** `/payload/sessionId` → `payload.sessionId`; the field as a user would name it. */
export function fieldOf(instancePath: string, missing?: unknown): string | undefined {
  const parts = instancePath
    .split('/')
    .slice(1)
    .map((p) => p.replaceAll('~1', '/').replaceAll('~0', '~'));
  if (typeof missing === 'string') parts.push(missing);
  return parts.length === 0 ? undefined : parts.join('.');
}

/**
 * The most useful error of a failed check: the deepest one, preferring a named field over
 * the generic "must match a schema in anyOf".
 */
function pickError(errors: SchemaError[]): SchemaError | undefined {
  const useful = errors.filter((e) => e.keyword !== 'anyOf' && e.keyword !== 'boolean');
  const pool = useful.length > 0 ? useful : errors;
  return pool.reduce<SchemaError | undefined>(
    (best, e) =>
      best === undefined || e.instancePath.split('/').length > best.instancePath.split('/').length
        ? e
        : best,
    undefined,
  );
}

function describeError(error: SchemaError): { field: string | undefined; message: string } {
  const params = error.params;
  if (error.keyword === 'required') {
    const missing =
      (params.requiredProperties as string[] | undefined)?.[0] ?? params.missingProperty;
    const field = fieldOf(error.instancePath, missing);
    return { field, message: `${field ?? 'value'} is required` };
  }
  if (error.keyword === 'additionalProperties') {
    const extra =
      (params.additionalProperties as string[] | undefined)?.[0] ?? params.additionalProperty;
    const field = fieldOf(error.instancePath, extra);
    return { field, message: `${field ?? 'value'} is not a known field` };
  }
  const field = fieldOf(error.instancePath);
  return { field, message: `${field ?? 'value'} ${error.message}` };
}

export interface Validator<T> {
  check(value: unknown): value is T;
  /** Returns the value typed, or throws InvalidArgumentError naming the first bad field. */
  parse(value: unknown): T;
}

export function validator<T>(schema: TSchema): Validator<T> {
  const compiled = Compile(schema);
  return {
    check: (value: unknown): value is T => compiled.Check(value),
    parse(value: unknown): T {
      if (compiled.Check(value)) return value as T;
      const errors = [...compiled.Errors(value)] as unknown as SchemaError[];
      const first = pickError(errors);
      if (!first) throw new InvalidArgumentError('value is invalid');
      const { field, message } = describeError(first);
      throw new InvalidArgumentError(message, field);
    },
  };
}
