import fastifyCookie from '@fastify/cookie';
import fastifyHttpProxy from '@fastify/http-proxy';
import type { PreviewService } from '@berth/core';
import type { StateStore } from '@berth/domain';
import {
  PREVIEW_COOKIE,
  PREVIEW_COOKIE_AUDIENCE,
  PREVIEW_TOKEN_PARAMETER,
  PREVIEW_URL_AUDIENCE,
  createPreviewTokenVerifier,
  mintPreviewToken,
} from '@berth/platform';
import Fastify, {
  type FastifyBaseLogger,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
} from 'fastify';
import type { IncomingHttpHeaders } from 'node:http';
import type { ClientOptions, WebSocket } from 'ws';
import { Counter, type Registry } from 'prom-client';
import { errorPage, waitingPage } from './pages.ts';
import { PREVIEW_PREFIX, containerOfHost, isContainerId, unsafePathReason } from './paths.ts';
import { Targets } from './targets.ts';

export interface GatewayOptions {
  preview: PreviewService;
  store: StateStore;
  /** BERTH_AUTH_SECRET: preview tokens are signed with it (audience `berth-preview`). */
  authSecret: string;
  /** BERTH_PREVIEW_DOMAIN: the host-name form `<containerId>.<domain>`; none: path form only. */
  domain: string | undefined;
  /** How long the cookie a preview URL is exchanged for lasts. */
  cookieTtlMs: number;
  /** Cookies marked Secure (the gateway is reached over https). */
  secureCookies: boolean;
  /** BERTH_IDLE_TIMEOUT: activity is recorded often enough for a container without a policy. */
  idleTimeoutMs: number;
  /** How long a ready container's address is reused without reading the store. */
  cacheTtlMs: number;
  /** Longest a request is held while its container starts, before the waiting page. */
  holdMs?: number;
  pollMs?: number;
  /** How often the waiting page reloads itself. */
  refreshSeconds?: number;
  registry: Registry;
  logger?: FastifyBaseLogger;
}

declare module 'fastify' {
  interface FastifyRequest {
    /** The container this request previews (path or host name), checked against its token. */
    previewContainerId: string | undefined;
    /** The dev server this request goes to, once authorized and resolved. */
    previewUpstream: string | undefined;
    /** How often this container's preview activity is written (its record's interval). */
    previewTouchIntervalMs: number | undefined;
  }
}

/** What the traffic of an open proxied WebSocket counts as activity of. */
interface SocketActivity {
  containerId: string;
  touchIntervalMs: number;
  log: FastifyBaseLogger;
}

/** Marks a request whose URL was rewritten from the host-name form. */
const hostForm = new WeakSet<object>();

/** Request headers never passed to a dev server. */
const DROPPED_REQUEST_HEADERS = ['x-forwarded-host', 'forwarded', 'authorization'];

/** The Cookie header without the gateway's own cookie: a workload never sees a preview token. */
function withoutPreviewCookie(cookie: string | string[] | undefined): string | undefined {
  if (cookie === undefined) return undefined;
  const kept = (Array.isArray(cookie) ? cookie.join('; ') : cookie)
    .split(';')
    .map((part) => part.trim())
    .filter((part) => part !== '' && !part.startsWith(`${PREVIEW_COOKIE}=`));
  return kept.length > 0 ? kept.join('; ') : undefined;
}

function upstreamHeaders<T extends IncomingHttpHeaders>(headers: T): T {
  const next = { ...headers };
  for (const name of DROPPED_REQUEST_HEADERS) delete next[name];
  const cookie = withoutPreviewCookie(headers.cookie);
  if (cookie === undefined) delete next.cookie;
  else next.cookie = cookie;
  return next;
}

/**
 * The preview gateway (docs/design.md, "Preview URLs"): `/p/<containerId>/...` (or
 * `<containerId>.<domain>/...`) proxied, HTTP and WebSocket, to that container's dev server,
 * for a holder of a preview token of that container only.
 */
export async function buildGatewayApp(options: GatewayOptions): Promise<FastifyInstance> {
  const domain = options.domain?.toLowerCase();
  const app = Fastify({
    ...(options.logger ? { loggerInstance: options.logger } : { logger: false }),
    return503OnClosing: true,
    // A page loads tens of assets: one log line per request would be most of the gateway's
    // work. What it answers itself (refusals, waiting) is logged below, and counted.
    disableRequestLogging: true,
    routerOptions: { maxParamLength: 256 },
    // The host-name form becomes the path form before routing, so both share one route and
    // one set of checks. A host under the preview domain that names no container goes nowhere.
    rewriteUrl: (raw) => {
      const url = raw.url ?? '/';
      const containerId = containerOfHost(raw.headers.host ?? '', domain);
      if (containerId === undefined) return url;
      if (containerId === null) return '/~invalid-preview-host';
      hostForm.add(raw);
      return `${PREVIEW_PREFIX}${containerId}${url}`;
    },
  });
  app.decorateRequest('previewContainerId', undefined);
  app.decorateRequest('previewUpstream', undefined);
  app.decorateRequest('previewTouchIntervalMs', undefined);
  await app.register(fastifyCookie);

  const verifyUrlToken = createPreviewTokenVerifier(options.authSecret, PREVIEW_URL_AUDIENCE);
  const verifyCookie = createPreviewTokenVerifier(options.authSecret, PREVIEW_COOKIE_AUDIENCE);
  const targets = new Targets({
    preview: options.preview,
    cacheTtlMs: options.cacheTtlMs,
    holdMs: options.holdMs ?? 10_000,
    pollMs: options.pollMs ?? 200,
    idleTimeoutMs: options.idleTimeoutMs,
  });
  const refreshSeconds = options.refreshSeconds ?? 2;

  const outcomes = new Counter({
    name: 'berth_preview_requests_total',
    help: 'Preview requests by outcome (proxied, waiting, unauthenticated, forbidden, refused, bad_request)',
    labelNames: ['outcome'],
    registers: [options.registry],
  });
  const touches = new Counter({
    name: 'berth_preview_touches_total',
    help: 'Preview activity written to a container record (at most one per container every 30 s, or half its idle timeout)',
    registers: [options.registry],
  });

  /** When this process last recorded each container's preview activity. */
  const lastTouch = new Map<string, number>();
  const touch = (containerId: string, intervalMs: number, log: FastifyBaseLogger) => {
    const now = Date.now();
    if (now - (lastTouch.get(containerId) ?? 0) < intervalMs) return;
    if (lastTouch.size >= 10_000) lastTouch.clear();
    lastTouch.set(containerId, now);
    options.preview.touch(containerId).then(
      (outcome) => {
        if (outcome === 'touched') touches.inc();
      },
      (error: unknown) => {
        // Retried by the next request: activity is advisory, the page is served anyway.
        lastTouch.delete(containerId);
        log.warn({ containerId, err: error }, 'could not record preview activity');
      },
    );
  };

  /**
   * An open WebSocket counts as activity while messages go over it, either way (a page's
   * hot-reload socket its dev server pushes updates over): each message asks for the same
   * touch as a request, which the limiter above turns into one write per interval at most.
   * A silent open socket (a tab left open, ping/pong heartbeats) does not keep a container.
   * The plugin's hooks get the two sockets, not the request: the dev-server side socket is
   * tied to its request when the plugin creates it (see wsClientOptions below).
   */
  const socketActivity = new WeakMap<WebSocket, SocketActivity>();
  /** The upgrade whose dev-server socket is being created (set and taken synchronously). */
  let connecting: SocketActivity | undefined;
  const socketTraffic = (_context: unknown, _source: WebSocket, target: WebSocket) => {
    const activity = socketActivity.get(target);
    if (activity) touch(activity.containerId, activity.touchIntervalMs, activity.log);
  };

  const answer = (
    reply: FastifyReply,
    status: number,
    outcome: string,
    html: string,
    headers: Record<string, string> = {},
  ) => {
    outcomes.inc({ outcome });
    // Never the URL's query: it may hold a preview token.
    reply.request.log.info(
      { status, outcome, path: (reply.request.raw.url ?? '').split('?', 1)[0] },
      'preview request answered by the gateway',
    );
    return reply
      .code(status)
      .headers({ 'cache-control': 'no-store', ...headers })
      .type('text/html; charset=utf-8')
      .send(html);
  };

  // Before routing: a path that could lead anywhere but the container's own dev server.
  app.addHook('onRequest', async (request, reply) => {
    const problem = unsafePathReason(request.raw.url ?? '/');
    if (problem) return answer(reply, 400, 'bad_request', errorPage('Bad preview path', problem));
    return undefined;
  });

  app.get('/healthz', () => Promise.resolve({ status: 'ok' }));
  app.get('/readyz', async (_request, reply) => {
    try {
      await options.store.ping();
      return { status: 'ready' };
    } catch {
      return reply.code(503).send({ status: 'unavailable' });
    }
  });
  app.get('/metrics', async (_request, reply) =>
    reply.type(options.registry.contentType).send(await options.registry.metrics()),
  );
  app.all('/~invalid-preview-host', (_request, reply) =>
    answer(
      reply,
      400,
      'bad_request',
      errorPage('Bad preview host', 'The host name names no container.'),
    ),
  );
  // `/p/<id>` without its slash: the page's relative links need the slash.
  app.get('/p/:containerId', (request, reply) => {
    const { containerId } = request.params as { containerId: string };
    if (!isContainerId(containerId)) {
      return answer(reply, 404, 'bad_request', errorPage('No such preview', 'Bad container id.'));
    }
    const query = request.url.includes('?') ? request.url.slice(request.url.indexOf('?')) : '';
    return reply.redirect(`${PREVIEW_PREFIX}${containerId}/${query}`, 308);
  });

  /**
   * Authorizes a preview request and finds its dev server; answers it itself (a redirect, a
   * refusal, the waiting page) when it is not to be proxied.
   */
  const authorize = async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    const containerId = (request.params as { containerId?: string }).containerId ?? '';
    if (!isContainerId(containerId)) {
      await answer(reply, 404, 'bad_request', errorPage('No such preview', 'Bad container id.'));
      return;
    }
    // No header may name another container than the one routed to (a proxy in front that
    // honours X-Forwarded-Host, or a Host that disagrees with the path).
    for (const header of ['host', 'x-forwarded-host'] as const) {
      for (const value of String(request.headers[header] ?? '').split(',')) {
        const named = containerOfHost(value, domain);
        if (named !== undefined && named !== containerId) {
          await answer(
            reply,
            400,
            'bad_request',
            errorPage('Bad preview request', `The ${header} header names another container.`),
          );
          return;
        }
      }
    }
    request.previewContainerId = containerId;
    const inHostForm = hostForm.has(request.raw);
    const cookiePath = inHostForm ? '/' : `${PREVIEW_PREFIX}${containerId}/`;

    const query = new URL(request.raw.url ?? '/', 'http://gateway').searchParams;
    const urlToken = query.get(PREVIEW_TOKEN_PARAMETER);
    if (urlToken !== null) {
      const verdict = verifyUrlToken(urlToken);
      if (!verdict.ok) {
        await answer(
          reply,
          401,
          'unauthenticated',
          errorPage('Preview link expired', verdict.reason),
        );
        return;
      }
      if (verdict.containerId !== containerId) {
        await answer(
          reply,
          403,
          'forbidden',
          errorPage('Not your preview', 'This preview link is for another container.'),
        );
        return;
      }
      // Exchanged for a cookie scoped to this container, and the URL cleaned of the token, so
      // the page's own links work and the token leaves the address bar (and Referer headers).
      const cookie = mintPreviewToken(
        options.authSecret,
        containerId,
        PREVIEW_COOKIE_AUDIENCE,
        options.cookieTtlMs,
      );
      query.delete(PREVIEW_TOKEN_PARAMETER);
      const rest = query.toString();
      const path = (request.raw.url ?? '/').split('?', 1)[0] ?? '/';
      outcomes.inc({ outcome: 'exchanged' });
      await reply
        .setCookie(PREVIEW_COOKIE, cookie.token, {
          path: cookiePath,
          httpOnly: true,
          sameSite: 'lax',
          secure: options.secureCookies,
          expires: cookie.expiresAt,
        })
        .header('cache-control', 'no-store')
        .redirect(`${path}${rest ? `?${rest}` : ''}`, 303);
      return;
    }
    const cookieToken = request.cookies[PREVIEW_COOKIE];
    if (cookieToken === undefined) {
      await answer(
        reply,
        401,
        'unauthenticated',
        errorPage('Preview link needed', 'Open this preview through a preview URL from berth.'),
      );
      return;
    }
    const verdict = verifyCookie(cookieToken);
    if (!verdict.ok) {
      await answer(reply, 401, 'unauthenticated', errorPage('Preview expired', verdict.reason));
      return;
    }
    if (verdict.containerId !== containerId) {
      await answer(
        reply,
        403,
        'forbidden',
        errorPage('Not your preview', 'This preview session is for another container.'),
      );
      return;
    }

    const target = await targets.resolve(containerId);
    if (target.kind === 'waiting') {
      await answer(reply, 503, 'waiting', waitingPage(target.detail, refreshSeconds), {
        'retry-after': String(refreshSeconds),
      });
      return;
    }
    if (target.kind === 'refused') {
      await answer(reply, target.status, 'refused', errorPage(target.title, target.detail));
      return;
    }
    request.previewUpstream = target.upstream;
    request.previewTouchIntervalMs = target.touchIntervalMs;
    touch(containerId, target.touchIntervalMs, request.log);
    outcomes.inc({ outcome: 'proxied' });
  };

  await app.register(fastifyHttpProxy, {
    upstream: '',
    prefix: `${PREVIEW_PREFIX}:containerId`,
    rewritePrefix: '/',
    // `/p/<id>/...`; `/p/<id>` itself is the redirect above.
    routes: ['/*'],
    websocket: true,
    // Redirects from the dev server are rewritten below, per form.
    internalRewriteLocationHeader: false,
    preHandler: (request, reply, done) => {
      authorize(request, reply).then(
        () => done(),
        (error: unknown) => done(error as Error),
      );
    },
    replyOptions: {
      getUpstream: (request) => request.previewUpstream ?? 'http://127.0.0.1:1',
      rewriteRequestHeaders: (_request, headers) => upstreamHeaders(headers),
      rewriteHeaders: (headers, request) => {
        const location = headers.location;
        if (
          request?.previewContainerId &&
          typeof location === 'string' &&
          location.startsWith('/') &&
          !location.startsWith('//') &&
          !hostForm.has(request.raw)
        ) {
          return {
            ...headers,
            location: `${PREVIEW_PREFIX}${request.previewContainerId}${location}`,
          };
        }
        return headers;
      },
      onError: (anyReply, { error }) => {
        // This server is HTTP/1 (the plugin's types allow HTTP/2 replies too).
        const reply = anyReply as unknown as FastifyReply;
        // The dev server went away under a cached address: read the record again next time.
        const containerId = reply.request.previewContainerId;
        if (containerId) targets.forget(containerId);
        reply.request.log.warn({ containerId, err: error }, 'dev server did not answer');
        void answer(
          reply,
          502,
          'refused',
          errorPage('The dev server did not answer', 'Reload in a moment.'),
        );
      },
    },
    wsHooks: { onIncomingMessage: socketTraffic, onOutgoingMessage: socketTraffic },
    // The plugin passes these to the WebSocket client; its types omit the header rewrite.
    // It calls the header rewrite with the upgrade's request, then at once (synchronously)
    // creates the dev-server socket, whose `finishRequest` ties that socket to the request's
    // container for the message hooks above.
    wsClientOptions: {
      rewriteRequestHeaders: (headers: Record<string, string>, request: FastifyRequest) => {
        const { previewContainerId, previewTouchIntervalMs } = request;
        connecting =
          previewContainerId !== undefined && previewTouchIntervalMs !== undefined
            ? {
                containerId: previewContainerId,
                touchIntervalMs: previewTouchIntervalMs,
                log: request.log,
              }
            : undefined;
        const cookie = withoutPreviewCookie(request.headers.cookie);
        return cookie === undefined ? { ...headers } : { ...headers, cookie };
      },
      finishRequest: (upgrade, socket) => {
        if (connecting) socketActivity.set(socket, connecting);
        connecting = undefined;
        upgrade.end();
      },
    } as ClientOptions,
  });

  return app;
}
