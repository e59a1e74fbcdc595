/**
 * The contract's error codes, each with its HTTP status. Errors cross process boundaries
 * (HTTP answers, `command.rejected` events), so the code is the stable part; messages are
 * for people.
 */
export const ERROR_STATUS = {
  invalid_argument: 400,
  unauthenticated: 401,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  capacity_exceeded: 429,
  unavailable: 503,
} as const;

export type ErrorCode = keyof typeof ERROR_STATUS;

export interface BerthErrorOptions {
  field?: string;
  cause?: unknown;
  /** A failure that may succeed when tried again (store or runtime trouble). */
  retryable?: boolean;
}

export class BerthError extends Error {
  readonly code: ErrorCode;
  readonly field: string | undefined;
  readonly retryable: boolean;

  constructor(code: ErrorCode, message: string, options: BerthErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'BerthError';
    this.code = code;
    this.field = options.field;
    this.retryable = options.retryable ?? code === 'unavailable';
  }

  get status(): number {
    return ERROR_STATUS[this.code];
  }

  toJSON(): { code: ErrorCode; message: string; field?: string } {
    return this.field === undefined
      ? { code: this.code, message: this.message }
      : { code: this.code, message: this.message, field: this.field };
  }
}

export class InvalidArgumentError extends BerthError {
  constructor(message: string, field?: string, options: Omit<BerthErrorOptions, 'field'> = {}) {
    super('invalid_argument', message, { ...options, field });
    this.name = 'InvalidArgumentError';
  }
}

export class NotFoundError extends BerthError {
  constructor(message: string, options: BerthErrorOptions = {}) {
    super('not_found', message, options);
    this.name = 'NotFoundError';
  }
}

/** A quota of a client's policy is full (429 `capacity_exceeded`; `field` names the quota). */
export class CapacityExceededError extends BerthError {
  constructor(message: string, options: BerthErrorOptions = {}) {
    super('capacity_exceeded', message, options);
    this.name = 'CapacityExceededError';
  }
}

export class ConflictError extends BerthError {
  constructor(message: string, options: BerthErrorOptions = {}) {
    super('conflict', message, options);
    this.name = 'ConflictError';
  }
}

export class ForbiddenError extends BerthError {
  constructor(message: string, options: BerthErrorOptions = {}) {
    super('forbidden', message, options);
    this.name = 'ForbiddenError';
  }
}

export class UnauthenticatedError extends BerthError {
  constructor(message: string, options: BerthErrorOptions = {}) {
    super('unauthenticated', message, options);
    this.name = 'UnauthenticatedError';
  }
}

/** The store, the bus or the runtime did not answer as it should; worth retrying. */
export class UnavailableError extends BerthError {
  constructor(message: string, options: BerthErrorOptions = {}) {
    super('unavailable', message, { ...options, retryable: true });
    this.name = 'UnavailableError';
  }
}

/**
 * A conditional write lost a race: the record changed since it was read. Callers re-read
 * and decide again; it never reaches a user as such.
 */
export class StaleWriteError extends BerthError {
  constructor(message: string, options: BerthErrorOptions = {}) {
    super('conflict', message, { ...options, retryable: true });
    this.name = 'StaleWriteError';
  }
}

export function isBerthError(error: unknown): error is BerthError {
  return error instanceof BerthError;
}
