import type { UseCases } from '@berth/core';
import {
  CONTAINER_ID_PATTERN,
  CONTAINER_STATUSES,
  containerIdOf,
  parseContainerId,
  stopReason,
  toSessionJson,
  type ContainerRecord,
} from '@berth/domain';
import { PREVIEW_URL_AUDIENCE, mintPreviewToken, previewUrl } from '@berth/platform';
import { Counter, type Registry } from 'prom-client';
import Type from 'typebox';
import { assertMayAct, scopeListFilter } from '../auth.ts';
import type { ContainerCache } from '../cache.ts';
import { IdPart, PageQuery, errors, type DiscoveryServer } from './schemas.ts';

const JSON_UTF8 = 'application/json; charset=utf-8';

export interface ContainerRoutesOptions {
  useCases: UseCases;
  cache: ContainerCache;
  registry: Registry;
  /** Longest `?wait=` honoured, in seconds. */
  maxWaitSeconds: number;
  /** How often a waiting discover re-reads the store. */
  waitPollMs: number;
  /** Where preview URLs point and how long their tokens last; none: no preview URLs. */
  preview?: { baseUrl: string; domain: string | undefined; tokenTtlMs: number; secret: string };
}

/**
 * `/v1/containers...`: discover, read, list and stop containers, and a container's sessions.
 * Each handler checks the caller may act on the container, calls the core and shapes the answer.
 */
export function registerContainerRoutes(app: DiscoveryServer, options: ContainerRoutesOptions) {
  const { useCases, cache, maxWaitSeconds, waitPollMs } = options;
  const { containers } = useCases;
  const json = (container: ContainerRecord, messagesInFlight = 0) =>
    containers.json(container, messagesInFlight);
  const { preview } = options;
  /** A container's preview URL with a fresh token (docs/design.md, "Preview URLs"). */
  const mintPreview = (containerId: string) => {
    if (!preview) return undefined;
    const minted = mintPreviewToken(
      preview.secret,
      containerId,
      PREVIEW_URL_AUDIENCE,
      preview.tokenTtlMs,
    );
    return {
      url: previewUrl(preview, containerId, minted.token),
      expiresAt: minted.expiresAt.toISOString(),
    };
  };
  const withPreview = (containerId: string) => {
    const minted = mintPreview(containerId);
    return minted ? { previewUrl: minted.url } : {};
  };
  const DiscoverAnswer = Type.Object({
    container: Type.Ref('Container'),
    source: Type.String(),
    previewUrl: Type.Optional(
      Type.String({
        description:
          'the preview URL of the container, as POST /v1/containers/{containerId}/preview answers it',
      }),
    ),
  });
  const discoveries = new Counter({
    name: 'berth_discoveries_total',
    help: 'Discover answers by source (cache, store, created, pool)',
    labelNames: ['source'],
    registers: [options.registry],
  });

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
          200: DiscoverAnswer,
          201: DiscoverAnswer,
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
          // Made once per cached record: its preview token is then reused for at most the
          // cache's TTL, seconds out of its minutes.
          reply.serialize({
            container: json(container),
            source: 'cache',
            ...withPreview(containerId),
          }) as string,
      );
      if (cached !== undefined) {
        discoveries.inc({ source: 'cache' });
        // Already serialized by the route's schema: a JSON string is sent as it is.
        return reply
          .type(JSON_UTF8)
          .send(cached as unknown as { container: unknown; source: string });
      }
      const found = await containers.findOrStart(key);
      const container =
        wait > 0
          ? await containers.awaitSettled(found.container, wait * 1000, waitPollMs)
          : found.container;
      cache.put(container);
      discoveries.inc({ source: found.source });
      return reply
        .code(found.source === 'created' || found.source === 'pool' ? 201 : 200)
        .send({ container: json(container), source: found.source, ...withPreview(containerId) });
    },
  );

  /** Pre-warm starts still running, so that closing the app waits for them. */
  const prewarming = new Map<string, Promise<void>>();
  app.addHook('onClose', async () => {
    await Promise.allSettled([...prewarming.values()]);
  });

  app.post(
    '/v1/containers/prewarm',
    {
      schema: {
        summary:
          'A hint that a discover will follow soon: finds, claims from the warm pool or starts the container without waiting for it',
        body: Type.Object(
          { clientId: IdPart, projectId: IdPart, userId: IdPart },
          { additionalProperties: false },
        ),
        response: {
          202: Type.Object({ containerId: Type.String() }),
          ...errors(400, 401, 403, 429),
        },
      },
    },
    async (request, reply) => {
      const key = request.body;
      assertMayAct(request.principal, key);
      const containerId = containerIdOf(key);
      // One start per container in this replica at a time; others find it in the store.
      if (!prewarming.has(containerId) && cache.get(containerId) === undefined) {
        const started = containers
          .findOrStart(key)
          .then(
            (found) => {
              cache.put(found.container);
              discoveries.inc({ source: found.source });
            },
            (error: unknown) => request.log.warn({ containerId, err: error }, 'prewarm failed'),
          )
          .finally(() => prewarming.delete(containerId));
        prewarming.set(containerId, started);
      }
      return reply.code(202).send({ containerId });
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
      const container = await containers.get(request.params.containerId);
      return { container: json(container, await containers.messagesInFlight(container)) };
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
            ...PageQuery,
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
      const page = await containers.list(filter, Number(limit ?? '50'), cursor);
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
      const container = await containers.stop(
        request.params.containerId,
        stopReason('manual', request.body?.reason),
        generation !== undefined ? { generation } : {},
      );
      return reply.code(202).send({ container: json(container) });
    },
  );

  if (preview) {
    app.post(
      '/v1/containers/:containerId/preview',
      {
        schema: {
          summary:
            "A preview URL of the container's dev server: it carries a short-lived token, exchanged for a cookie scoped to that container on first use; opening it starts a stopped container",
          params: ContainerIdParams,
          response: {
            200: Type.Object({
              url: Type.String(),
              expiresAt: Type.String({
                format: 'date-time',
                description: 'until when the URL can be opened',
              }),
            }),
            ...errors(400, 401, 403),
          },
        },
      },
      (request) => {
        const key = parseContainerId(request.params.containerId);
        assertMayAct(request.principal, key);
        // No read: a preview of a stopped (or never started) container starts it when opened.
        return Promise.resolve(mintPreview(request.params.containerId));
      },
    );
  }

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
      const sessions = await useCases.sessions.ofContainer(request.params.containerId);
      return { sessions: sessions.map(toSessionJson) };
    },
  );
}
