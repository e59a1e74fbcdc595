import type { LifecycleHistory } from '@berth/core';
import {
  CONTAINER_ID_PATTERN,
  ForbiddenError,
  InvalidArgumentError,
  OPAQUE_ID_PATTERN,
  UnavailableError,
  parseContainerId,
  parseEventTypeFilter,
  type HistoryFilter,
} from '@berth/domain';
import Type from 'typebox';
import { assertMayAct, type Principal } from '../auth.ts';
import { IdPart, PageQuery, errors, type DiscoveryServer } from './schemas.ts';

export interface HistoryRoutesOptions {
  /** Absent: the routes answer 503 (an app built without a history, as some tests do). */
  history: LifecycleHistory | undefined;
}

/** An instant as the history's keys write it (ISO-8601 UTC with milliseconds). */
function parseSince(raw: string): string {
  const at = Date.parse(raw);
  if (!/^\d{4}-\d{2}-\d{2}(T[0-9:.]+(Z|[+-]\d{2}:\d{2}))?$/.test(raw) || Number.isNaN(at)) {
    throw new InvalidArgumentError(
      `since must be an ISO-8601 instant (e.g. 2026-12-01T13:00:00Z) or a day; got "${raw}"`,
      'since',
    );
  }
  return new Date(at).toISOString();
}

/**
 * The tenant rules of `GET /v1/containers`, for events: an admin reads everything, a service
 * its client, a user its own containers' events. At most one of containerId, sessionId and
 * clientId is given; without any, the caller's own scope is listed.
 */
function scopedFilter(
  principal: Principal,
  query: { containerId?: string; sessionId?: string; clientId?: string },
): HistoryFilter {
  const given = (['containerId', 'sessionId', 'clientId'] as const).filter(
    (name) => query[name] !== undefined,
  );
  if (given.length > 1) {
    throw new InvalidArgumentError(
      `give at most one of containerId, sessionId and clientId; got ${given.join(' and ')}`,
      given[1],
    );
  }
  const admin = principal.role === 'admin';
  const own = {
    ...(admin ? {} : { clientId: principal.clientId }),
    ...(principal.role === 'user' ? { userId: principal.userId } : {}),
  };
  if (query.containerId !== undefined) {
    assertMayAct(principal, parseContainerId(query.containerId));
    return { containerId: query.containerId };
  }
  // A session's events are filtered to the caller's own: another's session reads as empty,
  // as `GET /v1/sessions/{id}` answers 404 for it (session ids are often guessable).
  if (query.sessionId !== undefined) return { sessionId: query.sessionId, ...own };
  if (query.clientId !== undefined && !admin && query.clientId !== principal.clientId) {
    throw new ForbiddenError(`not allowed to read the events of client ${query.clientId}`);
  }
  return admin ? (query.clientId !== undefined ? { clientId: query.clientId } : {}) : own;
}

/** `/v1/events`, `/v1/containers/{id}/history`, `/v1/usage` (issue 18). */
export function registerHistoryRoutes(app: DiscoveryServer, options: HistoryRoutesOptions) {
  const historyOf = (): LifecycleHistory => {
    if (!options.history) throw new UnavailableError('the lifecycle history is not configured');
    return options.history;
  };

  app.get(
    '/v1/events',
    {
      schema: {
        summary: 'Lifecycle events kept in the history, newest first',
        querystring: Type.Object(
          {
            containerId: Type.Optional(Type.String({ pattern: CONTAINER_ID_PATTERN })),
            sessionId: Type.Optional(Type.String({ pattern: OPAQUE_ID_PATTERN })),
            clientId: Type.Optional(IdPart),
            since: Type.Optional(
              Type.String({ minLength: 1, maxLength: 40, description: 'ISO-8601 instant' }),
            ),
            type: Type.Optional(
              Type.String({
                minLength: 1,
                maxLength: 64,
                description: 'an event type, or a family such as container.*',
              }),
            ),
            ...PageQuery,
          },
          { additionalProperties: false },
        ),
        response: {
          200: Type.Object({
            events: Type.Array(Type.Ref('Event')),
            nextCursor: Type.Union([Type.String(), Type.Null()]),
          }),
          ...errors(400, 401, 403, 503),
        },
      },
    },
    async (request) => {
      const { limit, cursor, since, type, ...scope } = request.query;
      const filter: HistoryFilter = {
        ...scopedFilter(request.principal, scope),
        ...(since !== undefined ? { since: parseSince(since) } : {}),
        ...(type !== undefined ? { type: parseEventTypeFilter(type) } : {}),
      };
      const page = await historyOf().list(filter, Number(limit ?? '50'), cursor);
      return { events: page.items, nextCursor: page.nextCursor };
    },
  );

  app.get(
    '/v1/containers/:containerId/history',
    {
      schema: {
        summary: "A container's generations as the history tells them, newest first",
        params: Type.Object({ containerId: Type.String({ pattern: CONTAINER_ID_PATTERN }) }),
        response: {
          200: Type.Object({
            containerId: Type.String(),
            generations: Type.Array(Type.Ref('Generation')),
          }),
          ...errors(400, 401, 403, 404, 503),
        },
      },
    },
    async (request) => {
      const { containerId } = request.params;
      assertMayAct(request.principal, parseContainerId(containerId));
      return { containerId, generations: await historyOf().generations(containerId) };
    },
  );

  app.get(
    '/v1/usage',
    {
      schema: {
        summary: 'Container-hours and sessions per client, project and day, from the history',
        querystring: Type.Object(
          {
            clientId: Type.Optional(IdPart),
            from: Type.Optional(
              Type.String({ minLength: 1, maxLength: 10, description: 'YYYY-MM-DD (UTC)' }),
            ),
            to: Type.Optional(
              Type.String({ minLength: 1, maxLength: 10, description: 'YYYY-MM-DD (UTC)' }),
            ),
          },
          { additionalProperties: false },
        ),
        response: {
          200: Type.Object({
            clientId: Type.Union([Type.String(), Type.Null()]),
            from: Type.String(),
            to: Type.String(),
            retainedSince: Type.String(),
            days: Type.Array(Type.Ref('UsageRow')),
            totals: Type.Object({
              containerHours: Type.Number(),
              sessions: Type.Integer(),
              generations: Type.Integer(),
            }),
          }),
          ...errors(400, 401, 403, 503),
        },
      },
    },
    async (request) => {
      const { principal } = request;
      const { clientId, from, to } = request.query;
      if (principal.role !== 'admin' && clientId !== undefined && clientId !== principal.clientId) {
        throw new ForbiddenError(`not allowed to read the usage of client ${clientId}`);
      }
      return historyOf().usage({
        ...(principal.role === 'admin'
          ? clientId !== undefined
            ? { clientId }
            : {}
          : { clientId: principal.clientId }),
        ...(principal.role === 'user' ? { userId: principal.userId } : {}),
        ...(from !== undefined ? { from } : {}),
        ...(to !== undefined ? { to } : {}),
      });
    },
  );
}
