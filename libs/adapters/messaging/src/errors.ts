/**
 * Every AWS SDK error leaving this adapter becomes a domain error. Callers retry on
 * UnavailableError and report InvalidArgumentError, so the only judgement made here is
 * whether trying again could help.
 */
import {
  InvalidArgumentError,
  UnavailableError,
  isBerthError,
  type BerthError,
} from '@berth/domain';

const MISSING_QUEUE = new Set([
  'QueueDoesNotExist',
  'AWS.SimpleQueueService.NonExistentQueue',
  'NonExistentQueue',
]);
const MISSING_TOPIC = new Set(['NotFound', 'NotFoundException']);

/**
 * Rejected input: retrying the same request cannot succeed. Throttling, missing resources,
 * credentials and network trouble are deliberately absent: they may clear up.
 */
const BAD_INPUT = new Set([
  'InvalidParameterValue',
  'InvalidParameterValueException',
  'InvalidParameter',
  'InvalidParameterException',
  'InvalidAttributeName',
  'InvalidAttributeValue',
  'InvalidMessageContents',
  'MessageTooLong',
  'InvalidBatchEntryId',
  'BatchRequestTooLong',
  'BatchEntryIdsNotDistinct',
  'TooManyEntriesInBatchRequest',
  'EmptyBatchRequest',
  'TooManyEntriesInBatchRequestException',
  'BatchEntryIdsNotDistinctException',
  'EmptyBatchRequestException',
  'InvalidBatchEntryIdException',
  'BatchRequestTooLongException',
]);

/** The error's code as the SDK reports it (`name`, or the legacy query code in `Code`). */
export function errorCodes(error: unknown): string[] {
  if (typeof error !== 'object' || error === null) return [];
  const codes: string[] = [];
  const { name, Code, code } = error as { name?: unknown; Code?: unknown; code?: unknown };
  for (const value of [name, Code, code]) {
    // SQS answers in JSON but keeps the query protocol's codes, so the SDK may name an
    // error `AWS.SimpleQueueService.QueueNameExists` or just `QueueNameExists`.
    if (typeof value === 'string')
      codes.push(value, value.replace(/^AWS\.SimpleQueueService\./, ''));
  }
  return codes;
}

export function isMissingQueue(error: unknown): boolean {
  return errorCodes(error).some((code) => MISSING_QUEUE.has(code));
}

export function isMissingTopic(error: unknown): boolean {
  return errorCodes(error).some((code) => MISSING_TOPIC.has(code));
}

export function hasCode(error: unknown, code: string): boolean {
  return errorCodes(error).includes(code);
}

function describe(error: unknown): string {
  if (error instanceof Error) {
    const code = errorCodes(error)[0] ?? error.name;
    return error.message && error.message !== code ? `${code}: ${error.message}` : code;
  }
  return String(error);
}

/** The last path segment of a queue URL: what people call the queue. */
export function queueNameOf(queueUrl: string): string {
  const segments = queueUrl.split('/').filter((segment) => segment !== '');
  return segments.at(-1) ?? queueUrl;
}

/** The resource part of an SNS topic ARN (`arn:aws:sns:region:account:name`). */
export function topicNameOf(topicArn: string): string {
  return topicArn.split(':').at(-1) ?? topicArn;
}

/**
 * The SDK's errors carry the raw HTTP exchange (`$response`), signed request headers
 * included; a logger that prints causes would print those. The cause kept is a plain
 * error with the code, message and request metadata only.
 */
function sanitized(error: unknown): unknown {
  if (!(error instanceof Error)) return error;
  const { $fault, $metadata, Code, code } = error as {
    $fault?: unknown;
    $metadata?: { httpStatusCode?: number; requestId?: string; attempts?: number };
    Code?: unknown;
    code?: unknown;
  };
  const clean = new Error(error.message);
  clean.name = error.name;
  clean.stack = error.stack;
  return Object.assign(
    clean,
    $fault === undefined ? {} : { $fault },
    $metadata === undefined
      ? {}
      : {
          $metadata: {
            httpStatusCode: $metadata.httpStatusCode,
            requestId: $metadata.requestId,
            attempts: $metadata.attempts,
          },
        },
    Code === undefined ? {} : { Code },
    code === undefined ? {} : { code },
  );
}

/**
 * `action` says what was attempted, e.g. `sending to queue berth-task-events`; it starts
 * the message so that an operator sees which resource is in trouble.
 */
export function toMessagingError(error: unknown, action: string): BerthError {
  if (isBerthError(error)) return error;
  const cause = sanitized(error);
  if (isMissingQueue(error)) {
    return new UnavailableError(`${action} failed: the queue does not exist`, { cause });
  }
  if (isMissingTopic(error)) {
    return new UnavailableError(`${action} failed: the topic does not exist`, { cause });
  }
  if (errorCodes(error).some((code) => BAD_INPUT.has(code))) {
    return new InvalidArgumentError(`${action} was refused: ${describe(error)}`, undefined, {
      cause,
    });
  }
  return new UnavailableError(`${action} failed: ${describe(error)}`, { cause });
}
