import type { WebhookSubscriptions } from '@berth/core';
import {
  DELIVERY_STATUSES,
  EVENT_TYPES,
  ForbiddenError,
  UnavailableError,
  WebhookInputSchema,
  toDeliveryJson,
  toWebhookJson,
} from '@berth/domain';
import Type from 'typebox';
import type { Principal } from '../auth.ts';
import { IdPart, PageQuery, errors, type DiscoveryServer } from './schemas.ts';

export interface WebhookRoutesOptions {
  /** Absent on an app built without the webhook table (every webhook route answers 503). */
  webhooks: WebhookSubscriptions | undefined;
}

/** An admin, or a `service` token of that client; anyone else 403, whether a webhook exists or not. */
function assertMayManage(principal: Principal, clientId: string): void {
  if (principal.role === 'admin') return;
  if (principal.role === 'service' && principal.clientId === clientId) return;
  throw new ForbiddenError(
    `only an admin or a service token of client ${clientId} may see or change its webhook`,
  );
}

const WebhookJson = Type.Object({
  clientId: Type.String(),
  url: Type.String(),
  events: Type.Array(Type.String()),
  createdAt: Type.String(),
  updatedAt: Type.String(),
});

const Nullable = (schema: Type.TSchema) => Type.Union([schema, Type.Null()]);

const DeliveryJson = Type.Object({
  eventId: Type.String(),
  eventType: Type.Enum(EVENT_TYPES),
  containerId: Type.String(),
  occurredAt: Type.String(),
  status: Type.Enum(DELIVERY_STATUSES),
  attempts: Type.Integer(),
  createdAt: Type.String(),
  nextAttemptAt: Nullable(Type.String()),
  lastAttemptAt: Nullable(Type.String()),
  lastStatusCode: Nullable(Type.Integer()),
  lastError: Nullable(Type.String()),
  deliveredAt: Nullable(Type.String()),
  deadAt: Nullable(Type.String()),
});

/**
 * `/v1/webhooks/{clientId}`: a client's signed webhook (docs/contract.md, "Webhooks"), and
 * its deliveries for the console. The secret goes in with a `PUT` and never comes out.
 */
export function registerWebhookRoutes(app: DiscoveryServer, options: WebhookRoutesOptions) {
  const Params = Type.Object({ clientId: IdPart });
  const service = (): WebhookSubscriptions => {
    if (!options.webhooks) throw new UnavailableError('webhooks are not configured here');
    return options.webhooks;
  };

  app.get(
    '/v1/webhooks/:clientId',
    {
      schema: {
        summary: "A client's webhook (never its secret)",
        params: Params,
        response: { 200: WebhookJson, ...errors(400, 401, 403, 404, 503) },
      },
    },
    async (request) => {
      assertMayManage(request.principal, request.params.clientId);
      return toWebhookJson(await service().get(request.params.clientId));
    },
  );

  app.put(
    '/v1/webhooks/:clientId',
    {
      schema: {
        summary:
          "Set a client's webhook: where lifecycle events are POSTed, which ones, and the secret they are signed with",
        params: Params,
        body: WebhookInputSchema,
        response: { 200: WebhookJson, ...errors(400, 401, 403, 503) },
      },
    },
    async (request) => {
      assertMayManage(request.principal, request.params.clientId);
      return toWebhookJson(await service().put(request.params.clientId, request.body));
    },
  );

  app.delete(
    '/v1/webhooks/:clientId',
    {
      schema: {
        summary: "Remove a client's webhook; deliveries still queued are dead-lettered",
        params: Params,
        response: { 204: Type.Null(), ...errors(400, 401, 403, 404, 503) },
      },
    },
    async (request, reply) => {
      assertMayManage(request.principal, request.params.clientId);
      await service().delete(request.params.clientId);
      return reply.code(204).send(null);
    },
  );

  app.get(
    '/v1/webhooks/:clientId/deliveries',
    {
      schema: {
        summary: "A client's webhook deliveries, newest first: pending, delivered and dead letters",
        params: Params,
        querystring: Type.Object({
          status: Type.Optional(Type.Enum(DELIVERY_STATUSES)),
          ...PageQuery,
        }),
        response: {
          200: Type.Object({
            deliveries: Type.Array(DeliveryJson),
            nextCursor: Nullable(Type.String()),
          }),
          ...errors(400, 401, 403, 503),
        },
      },
    },
    async (request) => {
      assertMayManage(request.principal, request.params.clientId);
      const { status, limit, cursor } = request.query;
      const page = await service().deliveries(request.params.clientId, {
        ...(status ? { status } : {}),
        limit: limit ? Number(limit) : 50,
        ...(cursor ? { cursor } : {}),
      });
      return { deliveries: page.items.map(toDeliveryJson), nextCursor: page.nextCursor };
    },
  );
}
