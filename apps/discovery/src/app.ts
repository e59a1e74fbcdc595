import fastifyRateLimit from '@fastify/rate-limit';
import fastifySwagger from '@fastify/swagger';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { UseCases } from '@berth/core';
import {
  CONTAINER_ID_PATTERN,
  CONTAINER_STATUSES,
  ContainerJsonSchema,
  ID_PART_PATTERN,
  NotFoundError,
  OPAQUE_ID_PATTERN,
  SessionJsonSchema,
  UnauthenticatedError,
  containerIdOf,
  parseContainerId,
  stopReason,
  toSessionJson,
  type ContainerQueues,
  type ContainerRecord,
  type EventPublisher,
  type StateStore,
} from '@berth/domain';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import Type from 'typebox';
import type { Registry } from 'prom-client';
import { Counter, Histogram } from 'prom-client';
import {
  assertMayAct,
  createTokenVerifier,
  mayAct,
  scopeListFilter,
  type Principal,
} from './auth.ts';
import { ContainerCache } from './cache.ts';
import { errorBody, handleClientError, handleError, handleFrameworkError } from './errors.ts';

export interface DiscoveryOptions {
  useCases: UseCases;
  store: StateStore;
  queues: ContainerQueues;
  publisher: EventPublisher;
  authSecret: string;
  cacheTtlMs: number;
  /** The in-process cache; pass one to invalidate it from outside (lifecycle events). */
  cache?: ContainerCache;
  /** Requests per minute per (client, user); 0 or absent: no limit. */
  rateLimitPerMinute?: number;
  registry: Registry;
  /** A pino logger for request logs; none when absent. */
  logger?: FastifyBaseLogger;
  /** Longest `?wait=` honoured, in seconds. */
  maxWaitSeconds?: number;
  /** How often a waiting discover re-reads the store. */
  waitPollMs?: number;
}

declare module 'fastify' {
  interface FastifyRequest {
    principal: Principal;
  }
}

const IdPart = Type.String({ pattern: ID_PART_PATTERN });
const ErrorSchema = Type.Object(
  {
    error: Type.Object({
      code: Type.String(),
      message: Type.String(),
      field: Type.Optional(Type.String()),
    }),
  },
  { $id: 'Error' },
);
const errors = (...statuses: number[]) =>
  Object.fromEntries(statuses.map((status) => [status, Type.Ref('Error')]));

const JSON_UTF8 = 'application/json; charset=utf-8';
const BEARER = /^Bearer\s+(\S+)$/i;
const PUBLIC_ROUTES = new Set(['/healthz', '/readyz', '/metrics', '/docs']);

export async function buildDiscoveryApp(options: DiscoveryOptions): Promise<FastifyInstance> {
  const { useCases, store, queues, publisher } = options;
  const maxWaitSeconds = options.maxWaitSeconds ?? 60;
  const waitPollMs = options.waitPollMs ?? 100;
  const cache = options.cache ?? new ContainerCache({ ttlMs: options.cacheTtlMs });

  const app = Fastify({
    ...(options.logger ? { loggerInstance: options.logger } : { logger: false }),
    bodyLimit: 16 * 1024,
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, allErrors: false } },
    return503OnClosing: true,
    // The longest valid path parameter is a containerId of 191 characters; the default of 100
    // would answer valid long ids with "no route". Longer ones are refused as invalid.
    routerOptions: { maxParamLength: 256 },
    frameworkErrors: handleFrameworkError,
    clientErrorHandler: handleClientError,
  }).withTypeProvider<TypeBoxTypeProvider>();

  // JSON only: any other content type is refused with 415 instead of reaching validation.
  app.removeContentTypeParser('text/plain');
  app.decorateRequest('principal', null as unknown as Principal);
  app.addSchema(ErrorSchema);
  app.addSchema(ContainerJsonSchema);
  app.addSchema(SessionJsonSchema);
  app.setErrorHandler(handleError);
  app.setNotFoundHandler((request, reply) => {
    void reply
      .code(404)
      .send(errorBody('not_found', `no route ${request.method} ${request.url.split('?')[0]}`));
  });

  await app.register(fastifySwagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'berth discovery',
        version: '1.0.0',
        description: 'Finds or starts the workspace container of a (client, project, user).',
      },
      components: {
        securitySchemes: { bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } },
      },
      security: [{ bearer: [] }],
    },
  });
  const verifyToken = createTokenVerifier(options.authSecret);

  if (options.rateLimitPerMinute) {
    // Per (client, user) from the verified token, after authentication (preHandler), so one
    // tenant cannot starve another and an unauthenticated flood never reaches the store.
    await app.register(fastifyRateLimit, {
      global: true,
      hook: 'preHandler',
      max: options.rateLimitPerMinute,
      timeWindow: 60_000,
      // JSON, not `client/user`: claims are free text, and `a/b`+`c` must not share `a`+`b/c`'s budget.
      keyGenerator: (request) =>
        request.principal
          ? JSON.stringify([request.principal.clientId, request.principal.userId])
          : JSON.stringify(['ip', request.ip]),
      allowList: (request) => PUBLIC_ROUTES.has(request.routeOptions.url ?? ''),
      errorResponseBuilder: (_request, context) => ({
        statusCode: 429,
        code: 'capacity_exceeded',
        message: `rate limit of ${context.max} requests per minute exceeded; retry in ${context.after}`,
      }),
    });
  }

  const requests = new Counter({
    name: 'berth_http_requests_total',
    help: 'HTTP requests by route and status',
    labelNames: ['method', 'route', 'status'],
    registers: [options.registry],
  });
  const latency = new Histogram({
    name: 'berth_http_request_duration_seconds',
    help: 'HTTP request duration by route',
    labelNames: ['method', 'route'],
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30, 60],
    registers: [options.registry],
  });
  const discoveries = new Counter({
    name: 'berth_discoveries_total',
    help: 'Discover answers by source (cache, store, created)',
    labelNames: ['source'],
    registers: [options.registry],
  });

  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unknown';
    requests.inc({ method: request.method, route, status: reply.statusCode });
    latency.observe({ method: request.method, route }, reply.elapsedTime / 1000);
  });

  app.addHook('onRequest', (request, _reply, done) => {
    const route = request.routeOptions.url;
    if (route === undefined || PUBLIC_ROUTES.has(route)) {
      done();
      return;
    }
    const bearer = BEARER.exec(request.headers.authorization ?? '');
    if (!bearer?.[1]) {
      done(new UnauthenticatedError('Authorization: Bearer <token> is required'));
      return;
    }
    try {
      request.principal = verifyToken(bearer[1]);
      done();
    } catch (error) {
      done(error as Error);
    }
  });

  const json = (container: ContainerRecord, messagesInFlight = 0) =>
    useCases.containers.json(container, messagesInFlight);

  const inFlight = async (container: ContainerRecord): Promise<number> =>
    container.inputQueueUrl && (container.status === 'running' || container.status === 'starting')
      ? queues.messagesInFlight(container.inputQueueUrl).catch(() => 0)
      : 0;

  const awaitSettled = async (
    container: ContainerRecord,
    seconds: number,
  ): Promise<ContainerRecord> => {
    const deadline = Date.now() + seconds * 1000;
    let current = container;
    while (current.status === 'starting' && Date.now() < deadline) {
      await new Promise((resolve) =>
        setTimeout(resolve, Math.min(waitPollMs, Math.max(0, deadline - Date.now()))),
      );
      const fresh = await store.getContainer(container.containerId);
      if (!fresh || fresh.generation !== container.generation) break;
      current = fresh;
    }
    return current;
  };

  app.post(
    '/v1/containers/discover',
    {
      schema: {
        summary: 'Find the live container of a (client, project, user), or start one',
        body: Type.Object(
          { clientId: IdPart, projectId: IdPart, userId: IdPart },
          { additionalProperties: false },
        ),
        querystring: Type.Object(
          {
            wait: Type.Optional(
              Type.String({ pattern: '^([0-9]|[1-5][0-9]|60)$', description: 'seconds, 0-60' }),
            ),
          },
          { additionalProperties: false },
        ),
        response: {
          200: Type.Object({ container: Type.Ref('Container'), source: Type.String() }),
          201: Type.Object({ container: Type.Ref('Container'), source: Type.String() }),
          ...errors(400, 401, 403, 409, 429, 503),
        },
      },
    },
    async (request, reply) => {
      const key = request.body;
      assertMayAct(request.principal, key);
      const containerId = containerIdOf(key);
      const wait = Math.min(Number(request.query.wait ?? '0'), maxWaitSeconds);
      reply.code(200);
      const cached = cache.answer(
        containerId,
        (container) =>
          // The route's own serializer (its response schema) always yields a string.
          reply.serialize({ container: json(container), source: 'cache' }) as string,
      );
      if (cached !== undefined) {
        discoveries.inc({ source: 'cache' });
        // Already serialized by the route's schema: a JSON string is sent as it is.
        return reply
          .type(JSON_UTF8)
          .send(cached as unknown as { container: unknown; source: string });
      }
      const found = await useCases.containers.findOrStart(key);
      const container = wait > 0 ? await awaitSettled(found.container, wait) : found.container;
      cache.put(container);
      discoveries.inc({ source: found.source });
      return reply
        .code(found.source === 'created' ? 201 : 200)
        .send({ container: json(container), source: found.source });
    },
  );

  const ContainerIdParams = Type.Object({
    containerId: Type.String({ pattern: CONTAINER_ID_PATTERN }),
  });

  app.get(
    '/v1/containers/:containerId',
    {
      schema: {
        summary: 'One container',
        params: ContainerIdParams,
        response: {
          200: Type.Object({ container: Type.Ref('Container') }),
          ...errors(400, 401, 403, 404),
        },
      },
    },
    async (request) => {
      const key = parseContainerId(request.params.containerId);
      assertMayAct(request.principal, key);
      const container = await store.getContainer(request.params.containerId);
      if (!container)
        throw new NotFoundError(`container ${request.params.containerId} does not exist`);
      return { container: json(container, await inFlight(container)) };
    },
  );

  app.get(
    '/v1/containers',
    {
      schema: {
        summary: 'Containers, filtered and paged',
        querystring: Type.Object(
          {
            clientId: Type.Optional(IdPart),
            projectId: Type.Optional(IdPart),
            userId: Type.Optional(IdPart),
            status: Type.Optional(Type.Enum(CONTAINER_STATUSES)),
            limit: Type.Optional(
              Type.String({ pattern: '^([1-9][0-9]?|100)$', description: '1-100, default 50' }),
            ),
            cursor: Type.Optional(Type.String({ minLength: 1, maxLength: 2048 })),
          },
          { additionalProperties: false },
        ),
        response: {
          200: Type.Object({
            containers: Type.Array(Type.Ref('Container')),
            nextCursor: Type.Union([Type.String(), Type.Null()]),
          }),
          ...errors(400, 401, 403),
        },
      },
    },
    async (request) => {
      const { limit, cursor, ...rest } = request.query;
      const filter = scopeListFilter(request.principal, rest);
      const page = await store.listContainers(filter, Number(limit ?? '50'), cursor);
      return {
        containers: page.items.map((container) => json(container)),
        nextCursor: page.nextCursor,
      };
    },
  );

  app.post(
    '/v1/containers/:containerId/stop',
    {
      schema: {
        summary: 'Begin a graceful stop',
        params: ContainerIdParams,
        body: Type.Optional(
          Type.Object(
            {
              reason: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
              generation: Type.Optional(
                Type.Integer({
                  minimum: 1,
                  description: 'the generation meant; another one in the store answers 409',
                }),
              ),
            },
            { additionalProperties: false },
          ),
        ),
        response: {
          202: Type.Object({ container: Type.Ref('Container') }),
          ...errors(400, 401, 403, 404, 409),
        },
      },
      // `{reason?, generation?}`: a stop with no body at all is a stop without a reason, not a bad body.
      preValidation: (request, _reply, done) => {
        if (request.body === undefined) request.body = {};
        done();
      },
    },
    async (request, reply) => {
      const key = parseContainerId(request.params.containerId);
      assertMayAct(request.principal, key);
      cache.invalidate(request.params.containerId);
      const generation = request.body?.generation;
      const container = await useCases.containers.stop(
        request.params.containerId,
        stopReason('manual', request.body?.reason),
        generation !== undefined ? { generation } : {},
      );
      return reply.code(202).send({ container: json(container) });
    },
  );

  app.get(
    '/v1/containers/:containerId/sessions',
    {
      schema: {
        summary: "A container's sessions",
        params: ContainerIdParams,
        response: {
          200: Type.Object({ sessions: Type.Array(Type.Ref('Session')) }),
          ...errors(400, 401, 403, 404),
        },
      },
    },
    async (request) => {
      const key = parseContainerId(request.params.containerId);
      assertMayAct(request.principal, key);
      const container = await store.getContainer(request.params.containerId);
      if (!container)
        throw new NotFoundError(`container ${request.params.containerId} does not exist`);
      const sessions = await store.listSessionsByContainer(request.params.containerId);
      return { sessions: sessions.map(toSessionJson) };
    },
  );

  app.get(
    '/v1/sessions/:sessionId',
    {
      schema: {
        summary: 'One session',
        params: Type.Object({ sessionId: Type.String({ pattern: OPAQUE_ID_PATTERN }) }),
        response: {
          200: Type.Object({ session: Type.Ref('Session') }),
          ...errors(400, 401, 403, 404),
        },
      },
    },
    async (request) => {
      const session = await store.getSession(request.params.sessionId);
      const owner = session?.containerId ? parseContainerId(session.containerId) : undefined;
      // Another's session answers as if it did not exist: sessionIds are chosen by clients and
      // often guessable (thread ids), and a 403 would tell that one is in use. A tombstone
      // (released before it was assigned) has no owner to check: admins only.
      if (!session || !mayAct(request.principal, owner)) {
        throw new NotFoundError(`session ${request.params.sessionId} does not exist`);
      }
      return { session: toSessionJson(session) };
    },
  );

  app.get('/healthz', { schema: { hide: true } }, () => Promise.resolve({ status: 'ok' }));

  app.get('/readyz', { schema: { hide: true } }, async (_request, reply) => {
    const checks = await Promise.allSettled([store.ping(), publisher.ping()]);
    const [storeCheck, busCheck] = checks;
    const status = {
      store: storeCheck?.status === 'fulfilled' ? 'ok' : 'unavailable',
      bus: busCheck?.status === 'fulfilled' ? 'ok' : 'unavailable',
    };
    if (checks.every((check) => check.status === 'fulfilled'))
      return { status: 'ready', checks: status };
    return reply
      .code(503)
      .send({ ...errorBody('unavailable', 'a dependency does not answer'), checks: status });
  });

  app.get('/metrics', { schema: { hide: true } }, async (_request, reply) => {
    return reply.type(options.registry.contentType).send(await options.registry.metrics());
  });

  app.get('/docs', { schema: { hide: true } }, () => Promise.resolve(app.swagger()));

  return app;
}
