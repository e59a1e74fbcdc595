import type { UseCases } from '@berth/core';
import {
  CONTAINER_ID_PATTERN,
  ForbiddenError,
  formatDuration,
  idleDueAt,
  lifetimeEndsAt,
  parseContainerId,
  toEffectivePolicyJson,
  toPolicyJson,
  type StoredPolicy,
} from '@berth/domain';
import Type from 'typebox';
import { assertMayAct, type Principal } from '../auth.ts';
import { IdPart, errors, type DiscoveryServer } from './schemas.ts';

export interface PolicyRoutesOptions {
  useCases: UseCases;
}

/** Only an admin changes a policy; a `service` token of the client may read its own. */
function assertMayRead(principal: Principal, clientId: string): void {
  if (principal.role === 'admin') return;
  if (principal.role === 'service' && principal.clientId === clientId) return;
  throw new ForbiddenError(`not allowed to read the policies of client ${clientId}`);
}

function assertMayWrite(principal: Principal, clientId: string): void {
  if (principal.role !== 'admin') {
    throw new ForbiddenError(`only an admin may change the policies of client ${clientId}`);
  }
}

const StoredPolicyJson = Type.Object({
  clientId: Type.String(),
  projectId: Type.Union([Type.String(), Type.Null()]),
  policy: Type.Ref('Policy'),
  updatedAt: Type.String(),
});

const Effective = (value: Type.TSchema) =>
  Type.Object({
    value,
    source: Type.Union([Type.Literal('project'), Type.Literal('client'), Type.Literal('default')]),
  });
const NullableDuration = Type.Union([Type.String(), Type.Null()]);
const NullableCount = Type.Union([Type.Integer(), Type.Null()]);

function storedJson(stored: StoredPolicy) {
  return {
    clientId: stored.clientId,
    projectId: stored.projectId,
    policy: toPolicyJson(stored.policy),
    updatedAt: stored.updatedAt,
  };
}

/**
 * `/v1/policies/...`: a client's and a project's lifecycle policy (docs/contract.md, "Lifecycle
 * policies and quotas"), and `/v1/containers/{id}/policy`, the effective values of a container.
 */
export function registerPolicyRoutes(app: DiscoveryServer, options: PolicyRoutesOptions) {
  const { policies } = options.useCases;
  const ClientParams = Type.Object({ clientId: IdPart });
  const ProjectParams = Type.Object({ clientId: IdPart, projectId: IdPart });
  const scopes = [
    { path: '/v1/policies/:clientId', params: ClientParams, what: "a client's policy" },
    {
      path: '/v1/policies/:clientId/:projectId',
      params: ProjectParams,
      what: "a project's policy (overrides its client's, field by field)",
    },
  ] as const;

  for (const scope of scopes) {
    const projectOf = (params: { clientId: string; projectId?: string }) =>
      params.projectId ?? null;

    app.get(
      scope.path,
      {
        schema: {
          summary: `Read ${scope.what}`,
          params: scope.params,
          response: { 200: StoredPolicyJson, ...errors(400, 401, 403, 404, 503) },
        },
      },
      async (request) => {
        const params = request.params as { clientId: string; projectId?: string };
        assertMayRead(request.principal, params.clientId);
        return storedJson(await policies.get(params.clientId, projectOf(params)));
      },
    );

    app.put(
      scope.path,
      {
        schema: {
          summary: `Set ${scope.what}; admin only. Applied to the live containers before the answer`,
          params: scope.params,
          body: Type.Ref('Policy'),
          response: { 200: StoredPolicyJson, ...errors(400, 401, 403, 503) },
        },
      },
      async (request) => {
        const params = request.params as { clientId: string; projectId?: string };
        assertMayWrite(request.principal, params.clientId);
        return storedJson(await policies.put(params.clientId, projectOf(params), request.body));
      },
    );

    app.delete(
      scope.path,
      {
        schema: {
          summary: `Remove ${scope.what}; admin only`,
          params: scope.params,
          response: { 204: Type.Null(), ...errors(400, 401, 403, 404, 503) },
        },
      },
      async (request, reply) => {
        const params = request.params as { clientId: string; projectId?: string };
        assertMayWrite(request.principal, params.clientId);
        await policies.delete(params.clientId, projectOf(params));
        return reply.code(204).send(null);
      },
    );
  }

  app.get(
    '/v1/containers/:containerId/policy',
    {
      schema: {
        summary: "A container's effective policy: every value and where it came from",
        params: Type.Object({ containerId: Type.String({ pattern: CONTAINER_ID_PATTERN }) }),
        response: {
          200: Type.Object({
            containerId: Type.String(),
            policy: Type.Object({
              idleTimeout: Effective(Type.String()),
              maxLifetime: Effective(NullableDuration),
              maxSessions: Effective(Type.Integer()),
              maxLiveContainersPerUser: Effective(NullableCount),
              maxLiveContainersPerClient: Effective(NullableCount),
              maxProjectsPerClient: Effective(NullableCount),
            }),
            applied: Type.Object({
              idleTimeout: Type.String(),
              idleTimeoutSince: Type.Union([Type.String(), Type.Null()]),
              idleStopAt: Type.Union([Type.String(), Type.Null()]),
              expiresAt: Type.Union([Type.String(), Type.Null()]),
            }),
          }),
          ...errors(400, 401, 403, 404, 503),
        },
      },
    },
    async (request) => {
      assertMayAct(request.principal, parseContainerId(request.params.containerId));
      const { effective, container } = await policies.effectiveFor(request.params.containerId);
      const applied = policies.policyOf(container);
      const idle =
        container.status === 'running' && container.sessions.length === 0 && container.idleSince;
      return {
        containerId: container.containerId,
        policy: toEffectivePolicyJson(effective),
        applied: {
          idleTimeout: formatDuration(applied.idleTimeoutMs),
          idleTimeoutSince: applied.idleTimeoutSince,
          idleStopAt: idle ? idleDueAt(idle, applied) : null,
          expiresAt: lifetimeEndsAt(container.createdAt, applied),
        },
      };
    },
  );
}
