import fastifyCookie from '@fastify/cookie';
import fastifyFormbody from '@fastify/formbody';
import { fastifySSE } from '@fastify/sse';
import fastifyStatic from '@fastify/static';
import {
  type BerthEvent,
  type ContainerJson,
  type DeliveryJson,
  type SessionJson,
} from '@berth/domain';
import { createDecoder } from 'fast-jwt';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Principal } from '../auth.ts';
import { errorBody } from '../errors.ts';
import type { DiscoveryServer } from '../routes/schemas.ts';
import type { LifecycleFeed } from './feed.ts';
import {
  containerBody,
  containersBody,
  errorBodyHtml,
  loginBody,
  logUrlOf,
  page,
  tenantBody,
  type EventJson,
  type HistoryJson,
  type Html,
  type Optional,
  type UsageJson,
  type WebhookView,
} from './views.ts';

/** The cookie that carries the admin token: HttpOnly, SameSite=Strict, path /console only. */
export const CONSOLE_COOKIE = 'berth_console';
/** Longest a console sign-in lasts, whatever the token's own expiry. */
const MAX_SIGN_IN_SECONDS = 12 * 3600;
/** Live containers one console page reads at most (each a page of the listing route). */
const MAX_LISTED = 500;
const LIVE_STATUSES = ['starting', 'running', 'terminating'] as const;

const STATIC_DIR = fileURLToPath(new URL('./static/', import.meta.url));
const HTMX_DIR = dirname(fileURLToPath(import.meta.resolve('htmx.org/dist/htmx.min.js')));

/**
 * Same origin only: the page's own script and styles (htmx from node_modules), nothing inline,
 * no framing. With the token in an HttpOnly cookie, a script injected into the page could
 * neither read the token nor load from elsewhere.
 */
const CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "frame-ancestors 'none'",
  "form-action 'self'",
  "base-uri 'none'",
].join('; ');

export interface ConsoleOptions {
  verifyToken: (token: string) => Principal;
  /** Lifecycle events to stream to browsers; none: the console never updates by itself. */
  feed?: LifecycleFeed;
  /** How often an idle event stream sends a comment line, so proxies keep it open. */
  heartbeatMs?: number;
  /** `BERTH_CONSOLE_LOG_URL`: the template of a container's log link. */
  logUrl?: string;
}

declare module 'fastify' {
  interface FastifyRequest {
    consoleToken: string | undefined;
  }
}

interface ApiAnswer {
  status: number;
  body: unknown;
}

const decode = createDecoder();

function errorMessage(body: unknown): string {
  const error = (body as { error?: { message?: unknown } } | undefined)?.error;
  return typeof error?.message === 'string' ? error.message : 'unexpected answer';
}

function isHttps(request: FastifyRequest): boolean {
  return request.protocol === 'https' || request.headers['x-forwarded-proto'] === 'https';
}

function today(now: Date): string {
  return now.toISOString().slice(0, 10);
}

/** What the console sends to a browser about one event: enough to say what changed. */
function eventSummary(event: BerthEvent) {
  const container = (event.payload as { container?: Partial<ContainerJson> }).container;
  return {
    type: event.type,
    eventId: event.eventId,
    occurredAt: event.occurredAt,
    containerId: event.containerId ?? null,
    sessionId: event.sessionId ?? null,
    status: container?.status ?? null,
    generation: container?.generation ?? null,
  };
}

/**
 * The operator console at `/console`: server-rendered HTML (htmx swaps the live region on
 * each lifecycle event), an admin token kept in an HttpOnly cookie, and `/console/events`,
 * the lifecycle events as server-sent events. Every figure it shows comes from the public
 * routes, called in-process with the signed-in admin's token (`inject`), so the console can
 * see and do exactly what that token may through the API, and history, usage and webhook
 * deliveries appear as soon as their routes exist.
 */
export async function registerConsole(app: DiscoveryServer, options: ConsoleOptions) {
  const api = async (
    token: string,
    method: 'GET' | 'POST',
    url: string,
    body?: unknown,
  ): Promise<ApiAnswer> => {
    const response = await app.inject({
      method,
      url,
      headers: {
        authorization: `Bearer ${token}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { payload: JSON.stringify(body) }),
    });
    let parsed: unknown = undefined;
    try {
      parsed = response.body ? JSON.parse(response.body) : undefined;
    } catch {
      parsed = response.body;
    }
    return { status: response.statusCode, body: parsed };
  };

  /**
   * A route that may not exist on this deployment (history, usage, webhooks: issue 18's other
   * items): its body, "not available" when there is no such route, or the API's 404 message.
   */
  const optional = async <T>(token: string, url: string, missing: string): Promise<Optional<T>> => {
    const answer = await api(token, 'GET', url);
    if (answer.status === 200) return { kind: 'ok', value: answer.body as T };
    const message = errorMessage(answer.body);
    if (answer.status === 404) {
      return { kind: 'missing', why: message.startsWith('no route') ? missing : message };
    }
    return { kind: 'error', status: answer.status, message };
  };

  const liveContainers = async (
    token: string,
    clientId?: string,
  ): Promise<{ containers: ContainerJson[]; truncated: boolean }> => {
    const containers: ContainerJson[] = [];
    for (const status of LIVE_STATUSES) {
      let cursor: string | null = null;
      do {
        const query = new URLSearchParams({ status, limit: '100' });
        if (clientId) query.set('clientId', clientId);
        if (cursor) query.set('cursor', cursor);
        const answer = await api(token, 'GET', `/v1/containers?${query.toString()}`);
        if (answer.status !== 200) throw new ConsoleApiError(answer);
        const body = answer.body as { containers: ContainerJson[]; nextCursor: string | null };
        containers.push(...body.containers);
        cursor = body.nextCursor;
        if (containers.length >= MAX_LISTED) return { containers, truncated: cursor !== null };
      } while (cursor);
    }
    return { containers, truncated: false };
  };

  await app.register(async (scope) => {
    await scope.register(fastifyCookie);
    // Only the console takes forms (its login); the API stays JSON-only.
    await scope.register(fastifyFormbody, { bodyLimit: 8 * 1024 });
    await scope.register(fastifySSE, { heartbeatInterval: options.heartbeatMs ?? 15_000 });
    await scope.register(fastifyStatic, {
      root: STATIC_DIR,
      prefix: '/console/static/',
      decorateReply: false,
      cacheControl: true,
      maxAge: 60_000,
    });
    await scope.register(fastifyStatic, {
      root: HTMX_DIR,
      prefix: '/console/vendor/htmx/',
      decorateReply: false,
      allowedPath: (path) => path === '/htmx.min.js',
      maxAge: 3_600_000,
    });
    scope.decorateRequest('consoleToken', undefined);

    scope.addHook('onSend', async (request, reply) => {
      if (
        !request.url.startsWith('/console/static/') &&
        !request.url.startsWith('/console/vendor/')
      )
        reply.header('cache-control', 'no-store');
      reply.header('content-security-policy', CSP);
      reply.header('x-content-type-options', 'nosniff');
      reply.header('referrer-policy', 'no-referrer');
    });

    // Authentication: the admin token from the cookie, verified as on every API route.
    scope.addHook('onRequest', async (request, reply) => {
      const route = request.routeOptions.url ?? '';
      if (
        route === '/console/login' ||
        route.startsWith('/console/static/') ||
        route.startsWith('/console/vendor/')
      )
        return;
      const token = request.cookies[CONSOLE_COOKIE];
      let principal: Principal | undefined;
      let why = 'sign in with an admin token';
      if (token) {
        try {
          principal = options.verifyToken(token);
          if (principal.role !== 'admin') {
            principal = undefined;
            why = 'the console needs an admin token';
          }
        } catch {
          why = 'the token is invalid or expired: sign in again';
        }
      }
      if (principal && token) {
        request.principal = principal;
        request.consoleToken = token;
        return;
      }
      if (token) reply.clearCookie(CONSOLE_COOKIE, { path: '/console' });
      if (route === '/console/events' || request.method !== 'GET') {
        return reply.code(401).send(errorBody('unauthenticated', why));
      }
      if (request.headers['hx-request'] === 'true') {
        return reply.code(401).header('hx-redirect', '/console/login').send('');
      }
      return reply.redirect('/console/login', 303);
    });

    const sendPage = (
      request: FastifyRequest,
      reply: FastifyReply,
      title: string,
      body: Html,
      nav: 'containers' | 'tenant' | 'container',
      status = 200,
    ) => {
      reply.code(status).type('text/html; charset=utf-8').header('vary', 'HX-Request');
      // A live reload (htmx) takes the region only; anything else, the whole page.
      if (request.headers['hx-request'] === 'true') return reply.send(body.text);
      return reply.send(
        page({ title, body, nav, signedIn: true, liveUrl: request.url.split('#')[0] ?? '' }),
      );
    };

    const sendError = (request: FastifyRequest, reply: FastifyReply, answer: ApiAnswer) => {
      const message = errorMessage(answer.body);
      return sendPage(
        request,
        reply,
        'Error',
        errorBodyHtml(answer.status, message),
        'containers',
        answer.status >= 400 ? answer.status : 502,
      );
    };

    scope.setErrorHandler((error, request, reply) => {
      if (error instanceof ConsoleApiError) return sendError(request, reply, error.answer);
      request.log.error({ err: error }, 'console page failed');
      return sendError(request, reply, {
        status: (error as { statusCode?: number }).statusCode ?? 500,
        body: errorBody('unavailable', 'the console could not render this page'),
      });
    });

    const hidden = { schema: { hide: true } };

    scope.get('/console/login', hidden, async (request, reply) => {
      const token = request.cookies[CONSOLE_COOKIE];
      if (token) {
        try {
          if (options.verifyToken(token).role === 'admin') return reply.redirect('/console', 303);
        } catch {
          // an old or bad cookie: show the form
        }
      }
      return reply
        .type('text/html; charset=utf-8')
        .send(page({ title: 'Sign in', body: loginBody(), signedIn: false }));
    });

    scope.post<{ Body: { token?: unknown } }>('/console/login', hidden, async (request, reply) => {
      const token = typeof request.body?.token === 'string' ? request.body.token.trim() : '';
      const refuse = (status: number, message: string) =>
        reply
          .code(status)
          .type('text/html; charset=utf-8')
          .send(page({ title: 'Sign in', body: loginBody(message), signedIn: false }));
      if (!token) return refuse(400, 'Paste a token to sign in.');
      let principal: Principal;
      try {
        principal = options.verifyToken(token);
      } catch {
        return refuse(401, 'That token is invalid or expired.');
      }
      if (principal.role !== 'admin') {
        return refuse(403, `That is a ${principal.role} token: the console needs an admin token.`);
      }
      const exp = (decode(token) as { exp?: unknown }).exp;
      const seconds =
        typeof exp === 'number'
          ? Math.min(MAX_SIGN_IN_SECONDS, Math.max(1, Math.floor(exp - Date.now() / 1000)))
          : MAX_SIGN_IN_SECONDS;
      reply.setCookie(CONSOLE_COOKIE, token, {
        path: '/console',
        httpOnly: true,
        sameSite: 'strict',
        secure: isHttps(request),
        maxAge: seconds,
      });
      request.log.info({ admin: principal.userId }, 'console sign-in');
      return reply.redirect('/console', 303);
    });

    scope.post('/console/logout', hidden, async (_request, reply) => {
      reply.clearCookie(CONSOLE_COOKIE, { path: '/console' });
      return reply.redirect('/console/login', 303);
    });

    scope.get('/console', hidden, async (request, reply) => {
      const token = request.consoleToken ?? '';
      const { containers, truncated } = await liveContainers(token);
      return sendPage(
        request,
        reply,
        'Containers',
        containersBody({ containers, truncated, now: Date.now() }),
        'containers',
      );
    });

    const containerPage = async (
      request: FastifyRequest,
      reply: FastifyReply,
      containerId: string,
      flash?: string,
    ) => {
      const token = request.consoleToken ?? '';
      const id = encodeURIComponent(containerId);
      const [found, sessions, history] = await Promise.all([
        api(token, 'GET', `/v1/containers/${id}`),
        api(token, 'GET', `/v1/containers/${id}/sessions`),
        optional<HistoryJson>(
          token,
          `/v1/containers/${id}/history`,
          'The lifecycle history is not available on this deployment yet.',
        ),
      ]);
      if (found.status !== 200) return sendError(request, reply, found);
      const { container } = found.body as { container: ContainerJson };
      return sendPage(
        request,
        reply,
        container.containerId,
        containerBody({
          container,
          logUrl: logUrlOf(options.logUrl, container),
          sessions:
            sessions.status === 200 ? (sessions.body as { sessions: SessionJson[] }).sessions : [],
          history,
          now: Date.now(),
          ...(flash ? { flash } : {}),
        }),
        'container',
      );
    };

    scope.get<{ Params: { containerId: string } }>(
      '/console/containers/:containerId',
      hidden,
      async (request, reply) => containerPage(request, reply, request.params.containerId),
    );

    scope.post<{ Params: { containerId: string }; Body: { generation?: unknown } }>(
      '/console/containers/:containerId/stop',
      hidden,
      async (request, reply) => {
        // Cross-site forms cannot set this header (it would need a CORS preflight, which
        // this server never grants); with the SameSite=Strict cookie it stops CSRF.
        if (request.headers['hx-request'] !== 'true') {
          return reply
            .code(403)
            .send(errorBody('forbidden', 'a stop must come from the console page (HX-Request)'));
        }
        const generation = Number(request.body?.generation);
        const answer = await api(
          request.consoleToken ?? '',
          'POST',
          `/v1/containers/${encodeURIComponent(request.params.containerId)}/stop`,
          {
            reason: `console: by ${request.principal.userId}`,
            ...(Number.isInteger(generation) && generation > 0 ? { generation } : {}),
          },
        );
        request.log.info(
          { containerId: request.params.containerId, admin: request.principal.userId },
          'console stop',
        );
        const flash =
          answer.status === 202
            ? 'Stop requested: the workspace is being saved.'
            : `Not stopped: ${errorMessage(answer.body)}`;
        return containerPage(request, reply, request.params.containerId, flash);
      },
    );

    scope.get<{ Params: { clientId: string } }>(
      '/console/clients/:clientId',
      hidden,
      async (request, reply) => {
        const token = request.consoleToken ?? '';
        const { clientId } = request.params;
        const client = encodeURIComponent(clientId);
        const now = new Date();
        const day = today(now);
        const monthStart = `${day.slice(0, 8)}01`;
        const missingWebhooks = 'Webhooks are not available on this deployment yet.';
        const [listed, usage, webhook, dead, recent, events] = await Promise.all([
          liveContainers(token, clientId),
          optional<UsageJson>(
            token,
            `/v1/usage?clientId=${client}&from=${monthStart}&to=${day}`,
            'Usage is not available on this deployment yet.',
          ),
          optional<{ url: string; events: string[] }>(token, `/v1/webhooks/${client}`, ''),
          optional<{ deliveries: DeliveryJson[] }>(
            token,
            `/v1/webhooks/${client}/deliveries?status=dead&limit=20`,
            missingWebhooks,
          ),
          optional<{ deliveries: DeliveryJson[] }>(
            token,
            `/v1/webhooks/${client}/deliveries?limit=20`,
            missingWebhooks,
          ),
          optional<{ events: EventJson[] }>(
            token,
            `/v1/events?clientId=${client}&limit=20`,
            'The lifecycle history is not available on this deployment yet.',
          ),
        ]);
        // The webhook itself answers 404 when none is set: that is "none", not an error.
        const webhooks: Optional<WebhookView> =
          dead.kind !== 'ok'
            ? dead
            : recent.kind !== 'ok'
              ? recent
              : {
                  kind: 'ok',
                  value: {
                    webhook: webhook.kind === 'ok' ? webhook.value : null,
                    dead: dead.value.deliveries,
                    recent: recent.value.deliveries,
                  },
                };
        return sendPage(
          request,
          reply,
          `Client ${clientId}`,
          tenantBody({
            clientId,
            containers: listed.containers,
            usage,
            today: day,
            webhooks,
            events,
            now: now.getTime(),
          }),
          'tenant',
        );
      },
    );

    /** Open event streams: ended when the server closes, or a SIGTERM would wait on browsers. */
    const streams = new Set<FastifyReply>();
    scope.addHook('preClose', (done) => {
      for (const stream of streams) stream.sse.close();
      done();
    });

    scope.get(
      '/console/events',
      { sse: { kind: 'only' }, schema: { hide: true } },
      async (request, reply) => {
        reply.sse.keepAlive();
        const unsubscribe = options.feed?.subscribe((event) => {
          if (!reply.sse.isConnected) return;
          reply.sse
            .send({ id: event.eventId, event: 'lifecycle', data: eventSummary(event) })
            .catch(() => undefined);
        });
        // A stream outlives no sign-in: it ends when the token expires (the browser then
        // reconnects, is refused and the page sends the operator to the login form).
        const exp = (decode(request.consoleToken ?? '') as { exp?: unknown }).exp;
        const expiry =
          typeof exp === 'number'
            ? setTimeout(
                () => reply.sse.close(),
                Math.min(MAX_SIGN_IN_SECONDS * 1000, Math.max(0, exp * 1000 - Date.now())),
              )
            : undefined;
        streams.add(reply);
        reply.sse.onClose(() => {
          streams.delete(reply);
          unsubscribe?.();
          if (expiry) clearTimeout(expiry);
        });
        await reply.sse.send({
          event: 'ready',
          data: { live: options.feed !== undefined },
        });
      },
    );
  });
}

class ConsoleApiError extends Error {
  readonly answer: ApiAnswer;
  constructor(answer: ApiAnswer) {
    super(`the API answered ${answer.status}`);
    this.answer = answer;
  }
}
