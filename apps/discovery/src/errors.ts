import { BerthError, ERROR_STATUS, fieldOf, type ErrorCode } from '@berth/domain';
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';

interface ErrorBody {
  error: { code: ErrorCode; message: string; field?: string };
}

const FRAMEWORK_CLIENT_ERRORS: Readonly<Record<string, string>> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'request body is too large',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'content-type must be application/json',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'body must not be empty when content-type is application/json',
};

export function errorBody(code: ErrorCode, message: string, field?: string): ErrorBody {
  // An empty field name is still a name: a body `{"": 0}` is answered with `field: ""`.
  return { error: { code, message, ...(field === undefined ? {} : { field }) } };
}

interface AjvError {
  keyword: string;
  instancePath: string;
  params: Record<string, unknown>;
  message?: string;
}

const CONTEXT_PREFIX: Record<string, string> = {
  body: '',
  querystring: '',
  params: '',
  headers: 'header.',
};

function describeValidation(error: FastifyError): { message: string; field?: string } {
  const first = (error.validation as AjvError[] | undefined)?.[0];
  if (!first) return { message: error.message };
  const prefix = CONTEXT_PREFIX[error.validationContext ?? 'body'] ?? '';
  const extra =
    first.keyword === 'required'
      ? first.params.missingProperty
      : first.keyword === 'additionalProperties'
        ? first.params.additionalProperty
        : undefined;
  const path = fieldOf(first.instancePath, extra);
  const field = path === undefined ? undefined : `${prefix}${path}`;
  const where =
    field === ''
      ? 'a field with an empty name'
      : (field ??
        (error.validationContext === 'body' ? 'body' : (error.validationContext ?? 'request')));
  const message =
    first.keyword === 'required'
      ? `${where} is required`
      : first.keyword === 'additionalProperties'
        ? `${where} is not a known field`
        : `${where} ${first.message ?? 'is invalid'}`;
  return { message, ...(field === undefined ? {} : { field }) };
}

/**
 * Every error leaves as the contract's `{"error": {code, message, field?}}`, with no stack
 * trace. Unknown errors are logged and answered as 503 `unavailable`: they are failures of
 * the store, the bus or the runtime, not of the client's request.
 */
export function handleError(
  error: FastifyError | Error,
  request: FastifyRequest,
  reply: FastifyReply,
): void {
  if (error instanceof BerthError) {
    if (error.retryable) {
      // The message of a store or runtime failure names tables, queues and the engine's own
      // words: for the log, not for the caller.
      request.log.warn({ err: error }, 'dependency unavailable');
      void reply
        .code(error.status)
        .send(errorBody(error.code, 'the service could not complete the request; try again'));
      return;
    }
    void reply.code(error.status).send(errorBody(error.code, error.message, error.field));
    return;
  }
  const fastifyError = error as FastifyError;
  if (fastifyError.validation) {
    const { message, field } = describeValidation(fastifyError);
    void reply.code(400).send(errorBody('invalid_argument', message, field));
    return;
  }
  const status = fastifyError.statusCode ?? 500;
  if (status === 401) {
    void reply.code(401).send(errorBody('unauthenticated', 'a valid bearer token is required'));
    return;
  }
  if (status === 429) {
    void reply.code(429).send(errorBody('capacity_exceeded', fastifyError.message));
    return;
  }
  if (status >= 400 && status < 500) {
    // Fastify's own client errors: body too large (413), bad JSON (400), bad content type (415).
    const known = FRAMEWORK_CLIENT_ERRORS[fastifyError.code];
    const message = known ?? `invalid request: ${fastifyError.message}`;
    const aboutTheBody =
      status !== 413 &&
      status !== 415 &&
      (fastifyError.code === 'FST_ERR_CTP_INVALID_JSON_BODY' || /JSON/.test(fastifyError.message));
    void reply
      .code(status)
      .send(
        errorBody(
          status === 404 ? 'not_found' : 'invalid_argument',
          message,
          aboutTheBody ? 'body' : undefined,
        ),
      );
    return;
  }
  request.log.error({ err: error }, 'request failed');
  void reply
    .code(ERROR_STATUS.unavailable)
    .send(errorBody('unavailable', 'the service could not complete the request; try again'));
}

/** The path parameter a URL carries, judged from its shape alone: the router could not match it. */
function pathParameterOf(url: string): string | undefined {
  const path = url.split('?')[0] ?? '';
  if (path.startsWith('/v1/sessions/')) return 'sessionId';
  if (path.startsWith('/v1/containers/')) return 'containerId';
  return undefined;
}

/**
 * Errors the router raises before any route is chosen, so `handleError` never sees them: a
 * path that is not valid percent-encoding (`%E0%A4%A`) and a path parameter longer than any
 * valid id. They too leave in the contract's shape, naming the parameter.
 */
export function handleFrameworkError(
  error: FastifyError,
  request: FastifyRequest,
  reply: FastifyReply,
): void {
  const field = pathParameterOf(request.url);
  const message =
    error.code === 'FST_ERR_MAX_PARAM_LENGTH'
      ? `${field ?? 'a path parameter'} is too long`
      : `${field ?? 'the path'} is not a valid URL component`;
  void reply.code(400).send(errorBody('invalid_argument', message, field));
}

const CLIENT_ERROR_STATUS: Record<string, number> = {
  ERR_HTTP_REQUEST_TIMEOUT: 408,
  HPE_HEADER_OVERFLOW: 431,
};

/**
 * A request Node's HTTP parser refuses (malformed request line, headers too large, too slow)
 * never reaches Fastify's handlers; answer it in the contract's shape too, then close.
 */
export function handleClientError(error: Error & { code?: string }, socket: Duplex): void {
  if (error.code === 'ECONNRESET' || socket.destroyed) return;
  const status = CLIENT_ERROR_STATUS[error.code ?? ''] ?? 400;
  const message =
    status === 431
      ? 'request headers are too large'
      : status === 408
        ? 'the request took too long to arrive'
        : 'malformed HTTP request';
  const body = JSON.stringify(errorBody('invalid_argument', message));
  if (socket.writable) {
    socket.write(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nContent-Type: application/json; charset=utf-8\r\nConnection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy(error);
}
