import { ApiError } from './http.ts';

/** The CLI's exit codes (also in main.ts's header and docs/contract.md). */
export const EXIT = {
  ok: 0,
  failure: 1,
  usage: 2,
  notFound: 3,
  auth: 4,
  unavailable: 5,
  conflict: 6,
} as const;

export class CliError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode: number) {
    super(message);
    this.exitCode = exitCode;
  }
}

function exitCodeFor(error: ApiError): number {
  if (error.status === 400 || error.status === 413) return EXIT.usage;
  if (error.status === 404) return EXIT.notFound;
  if (error.status === 401 || error.status === 403) return EXIT.auth;
  if (error.status === 409) return EXIT.conflict;
  if (error.status === 0 || error.status >= 500 || error.status === 429) return EXIT.unavailable;
  return EXIT.failure;
}

/**
 * Prints a known failure as one line and exits with its code; anything else (commander's
 * own errors, bugs) is thrown on.
 */
export function exitOnKnownError(error: unknown): void {
  if (error instanceof ApiError) {
    process.stderr.write(
      `berth: ${error.code}: ${error.message}${error.field ? ` (field ${error.field})` : ''}\n`,
    );
    process.exit(exitCodeFor(error));
  }
  if (error instanceof CliError) {
    process.stderr.write(`berth: ${error.message}\n`);
    process.exit(error.exitCode);
  }
  if (
    error instanceof Error &&
    error.name !== 'CommanderError' &&
    'code' in error &&
    error.code === 'unavailable'
  ) {
    process.stderr.write(`berth: ${error.message}\n`);
    process.exit(EXIT.unavailable);
  }
  if (error instanceof Error && error.name === 'InvalidArgumentError' && 'field' in error) {
    process.stderr.write(`berth: ${error.message}\n`);
    process.exit(EXIT.usage);
  }
}
