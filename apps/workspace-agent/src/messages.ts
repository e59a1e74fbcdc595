import { isOpaqueId, OPAQUE_ID_PATTERN } from '@berth/domain';

/** `{"sessionId", "threadId", "text"}`: run the workload once in the thread's worktree. */
export interface WorkMessage {
  kind: 'work';
  sessionId: string;
  threadId: string;
  text: string;
}

/** `{"type": "thread.open", "threadId", "sessionId"?}`: only make the thread's worktree. */
export interface ThreadOpenMessage {
  kind: 'thread.open';
  threadId: string;
  sessionId: string | undefined;
}

/** `{"type": "thread.close", "threadId", "sessionId"?}`: a session left the thread. */
export interface ThreadCloseMessage {
  kind: 'thread.close';
  threadId: string;
  sessionId: string | undefined;
}

/** `{"type": "thread.revert", "threadId", "sessionId", "checkpoint", "requestId"}`. */
export interface ThreadRevertMessage {
  kind: 'thread.revert';
  threadId: string;
  sessionId: string;
  /** The checkpoint commit whose tree the thread gets back. */
  checkpoint: string;
  requestId: string;
}

/** A body the agent will never be able to handle; answered once with exit code 2. */
export interface InvalidMessage {
  kind: 'invalid';
  field: string;
  error: string;
  /** Only ids that are themselves valid, so the answer can still be routed. */
  sessionId: string | undefined;
  threadId: string | undefined;
}

export type InputMessage =
  WorkMessage | ThreadOpenMessage | ThreadCloseMessage | ThreadRevertMessage | InvalidMessage;

/** What goes to the output queue, for every input message. */
export interface OutputMessage {
  sessionId?: string;
  threadId?: string;
  text: string;
  exitCode: number;
  /** The run's checkpoint commit, null when it changed nothing (absent on invalid messages). */
  checkpoint?: string | null;
}

/** The exit code of an answer to a message that could not be understood (as a shell's usage error). */
export const INVALID_MESSAGE_EXIT_CODE = 2;

const ID_RULE = `1-128 characters of letters, digits, ".", "_", ":" and "-" (${OPAQUE_ID_PATTERN})`;

function invalid(field: string, error: string, body: Record<string, unknown> = {}): InvalidMessage {
  return {
    kind: 'invalid',
    field,
    error,
    sessionId: isOpaqueId(body.sessionId) ? body.sessionId : undefined,
    threadId: isOpaqueId(body.threadId) ? body.threadId : undefined,
  };
}

function idProblem(
  body: Record<string, unknown>,
  field: 'sessionId' | 'threadId',
): InvalidMessage | undefined {
  const value = body[field];
  if (value === undefined) return invalid(field, `${field} is required`, body);
  if (!isOpaqueId(value)) return invalid(field, `${field} must be ${ID_RULE}`, body);
  return undefined;
}

/**
 * Parses an input queue message body. Never throws: a body that cannot be handled is a
 * permanent outcome (answered and deleted), not a failure to retry.
 */
export function parseInputMessage(rawBody: string | undefined): InputMessage {
  if (rawBody === undefined || rawBody === '') return invalid('body', 'message body is empty');
  let parsed: unknown;
  try {
    parsed = JSON.parse(rawBody);
  } catch {
    return invalid('body', 'message body is not valid JSON');
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    return invalid('body', 'message body must be a JSON object');
  }
  const body = parsed as Record<string, unknown>;

  if (body.type !== undefined) {
    if (body.type === 'thread.revert') {
      const problem = idProblem(body, 'threadId') ?? idProblem(body, 'sessionId');
      if (problem) return problem;
      if (
        typeof body.checkpoint !== 'string' ||
        !/^[0-9a-f]{40}([0-9a-f]{24})?$/.test(body.checkpoint)
      )
        return invalid('checkpoint', 'checkpoint must be a full commit id', body);
      if (!isOpaqueId(body.requestId))
        return invalid('requestId', `requestId must be ${ID_RULE}`, body);
      return {
        kind: 'thread.revert',
        threadId: body.threadId as string,
        sessionId: body.sessionId as string,
        checkpoint: body.checkpoint,
        requestId: body.requestId,
      };
    }
    if (body.type !== 'thread.open' && body.type !== 'thread.close') {
      return invalid(
        'type',
        `type must be "thread.open", "thread.close", "thread.revert" or absent; got ${JSON.stringify(body.type)}`,
        body,
      );
    }
    const threadProblem = idProblem(body, 'threadId');
    if (threadProblem) return threadProblem;
    if (body.sessionId !== undefined && !isOpaqueId(body.sessionId)) {
      return invalid('sessionId', `sessionId must be ${ID_RULE}`, body);
    }
    return {
      kind: body.type,
      threadId: body.threadId as string,
      sessionId: body.sessionId,
    };
  }

  const problem = idProblem(body, 'sessionId') ?? idProblem(body, 'threadId');
  if (problem) return problem;
  if (body.text === undefined) return invalid('text', 'text is required', body);
  if (typeof body.text !== 'string') return invalid('text', 'text must be a string', body);
  return {
    kind: 'work',
    sessionId: body.sessionId as string,
    threadId: body.threadId as string,
    text: body.text,
  };
}

/** The answer to an invalid message: the error names the field. */
export function invalidAnswer(message: InvalidMessage): OutputMessage {
  return {
    ...(message.sessionId === undefined ? {} : { sessionId: message.sessionId }),
    ...(message.threadId === undefined ? {} : { threadId: message.threadId }),
    text: `invalid message: ${message.error}`,
    exitCode: INVALID_MESSAGE_EXIT_CODE,
  };
}

/** SQS takes at most 256 KiB per message; leave room for the envelope and attributes. */
export const MAX_OUTPUT_BODY_BYTES = 250_000;
const TRUNCATED_MARK = '\n[berth: output truncated]';

/**
 * The output message as a queue body, its text cut (with a mark) when the whole would not fit
 * in one SQS message. Measured after JSON escaping, which can grow control characters sixfold.
 */
export function outputBody(output: OutputMessage, maxBytes = MAX_OUTPUT_BODY_BYTES): string {
  let body = JSON.stringify(output);
  let size = Buffer.byteLength(body);
  let text = output.text;
  while (size > maxBytes && text.length > 0) {
    const keep = Math.floor(text.length * (maxBytes / size) * 0.95);
    text = text.slice(0, Math.max(0, keep - TRUNCATED_MARK.length));
    body = JSON.stringify({ ...output, text: text + TRUNCATED_MARK });
    size = Buffer.byteLength(body);
  }
  return body;
}
