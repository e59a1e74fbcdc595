import fastifyRateLimit from '@fastify/rate-limit';
import fastifySwagger from '@fastify/swagger';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { LifecycleHistory, UseCases, WebhookSubscriptions } from '@berth/core';
import {
  ContainerJsonSchema,
  PolicySchema,
  SessionJsonSchema,
  CheckpointJsonSchema,
  EventSchema,
  GenerationJsonSchema,
  UsageRowSchema,
  UnauthenticatedError,
  type EventPublisher,
  type PreviewConfig,
  type StateStore,
} from '@berth/domain';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Registry } from 'prom-client';
import { Counter, Histogram } from 'prom-client';
import { createTokenVerifier, type Principal } from './auth.ts';
import { ContainerCache } from './cache.ts';
import type { LifecycleFeed } from './console/feed.ts';
import { registerConsole } from './console/plugin.ts';
import { errorBody, handleClientError, handleError, handleFrameworkError } from './errors.ts';
import { registerContainerRoutes } from './routes/containers.ts';
import { registerHistoryRoutes } from './routes/history.ts';
import { registerOperationRoutes } from './routes/operations.ts';
import { registerPolicyRoutes } from './routes/policies.ts';
import { ErrorSchema } from './routes/schemas.ts';
import { registerSessionRoutes } from './routes/sessions.ts';
import { registerWebhookRoutes } from './routes/webhooks.ts';

export interface DiscoveryOptions {
  useCases: UseCases;
  /** The lifecycle history's reads (`/v1/events`, `/v1/usage`...); absent: they answer 503. */
  history?: LifecycleHistory;
  store: StateStore;
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
  /** Lifecycle events for the console's live updates (`/console/events`). */
  feed?: LifecycleFeed;
  /** How often an idle console event stream sends a keep-alive comment. */
  consoleHeartbeatMs?: number;
  /** `BERTH_CONSOLE_LOG_URL`: the console's link to a container's logs. */
  consoleLogUrl?: string;
  /** Clients' signed webhooks; without it the webhook routes answer 503. */
  webhooks?: WebhookSubscriptions;
  /** The preview gateway preview URLs point at; no `previewUrl` and no preview route without. */
  preview?: Pick<PreviewConfig, 'baseUrl' | 'domain' | 'tokenTtlMs'>;
}

declare module 'fastify' {
  interface FastifyRequest {
    principal: Principal;
  }
}

const BEARER = /^Bearer\s+(\S+)$/i;
const PUBLIC_ROUTES = new Set(['/healthz', '/readyz', '/metrics', '/docs']);
/** The console authenticates with its own cookie (see console/plugin.ts), not a bearer header. */
const isConsoleRoute = (route: string) => route === '/console' || route.startsWith('/console/');

export async function buildDiscoveryApp(options: DiscoveryOptions): Promise<FastifyInstance> {
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
  app.addSchema(CheckpointJsonSchema);
  app.addSchema(PolicySchema);
  app.addSchema(EventSchema);
  app.addSchema(GenerationJsonSchema);
  app.addSchema(UsageRowSchema);
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
  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unknown';
    requests.inc({ method: request.method, route, status: reply.statusCode });
    latency.observe({ method: request.method, route }, reply.elapsedTime / 1000);
  });

  app.addHook('onRequest', (request, _reply, done) => {
    const route = request.routeOptions.url;
    if (route === undefined || PUBLIC_ROUTES.has(route) || isConsoleRoute(route)) {
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

  registerContainerRoutes(app, {
    useCases: options.useCases,
    cache,
    registry: options.registry,
    maxWaitSeconds: options.maxWaitSeconds ?? 60,
    waitPollMs: options.waitPollMs ?? 100,
    ...(options.preview ? { preview: { ...options.preview, secret: options.authSecret } } : {}),
  });
  registerSessionRoutes(app, { useCases: options.useCases });
  registerHistoryRoutes(app, { history: options.history });
  registerPolicyRoutes(app, { useCases: options.useCases });
  registerWebhookRoutes(app, { webhooks: options.webhooks });
  registerOperationRoutes(app, {
    store: options.store,
    publisher: options.publisher,
    registry: options.registry,
  });

  await registerConsole(app, {
    verifyToken,
    ...(options.feed ? { feed: options.feed } : {}),
    ...(options.consoleHeartbeatMs ? { heartbeatMs: options.consoleHeartbeatMs } : {}),
    ...(options.consoleLogUrl ? { logUrl: options.consoleLogUrl } : {}),
  });

  return app;
}
