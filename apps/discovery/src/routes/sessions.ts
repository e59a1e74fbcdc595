import { randomUUID } from 'node:crypto';
import type { UseCases } from '@berth/core';
import {
  NotFoundError,
  OPAQUE_ID_PATTERN,
  parseContainerId,
  toCheckpointJson,
  toSessionJson,
  type SessionRecord,
} from '@berth/domain';
import Type from 'typebox';
import { mayAct, type Principal } from '../auth.ts';
import { PageQuery, errors, type DiscoveryServer } from './schemas.ts';

/** `/v1/sessions/:sessionId`: one session, to its owner (or an admin) only. */
export function registerSessionRoutes(app: DiscoveryServer, options: { useCases: UseCases }) {
  const { useCases } = options;

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
    async (request) => ({ session: toSessionJson(await ownSession(request)) }),
  );

  /**
   * The session as its caller may see it. Another's session answers as if it did not exist:
   * sessionIds are chosen by clients and often guessable (thread ids), and a 403 would tell
   * that one is in use. A tombstone (released before it was assigned) has no owner to check:
   * admins only.
   */
  async function ownSession(request: {
    params: { sessionId: string };
    principal: Principal;
  }): Promise<SessionRecord> {
    const session = await useCases.sessions.get(request.params.sessionId);
    const owner = session?.containerId ? parseContainerId(session.containerId) : undefined;
    if (!session || !mayAct(request.principal, owner)) {
      throw new NotFoundError(`session ${request.params.sessionId} does not exist`);
    }
    return session;
  }

  const SessionParams = Type.Object({ sessionId: Type.String({ pattern: OPAQUE_ID_PATTERN }) });

  app.get(
    '/v1/sessions/:sessionId/checkpoints',
    {
      schema: {
        summary: "The checkpoints of the session's thread, newest first",
        params: SessionParams,
        querystring: Type.Object(
          {
            ...PageQuery,
          },
          { additionalProperties: false },
        ),
        response: {
          200: Type.Object({
            checkpoints: Type.Array(Type.Ref('Checkpoint')),
            nextCursor: Type.Union([Type.String(), Type.Null()]),
          }),
          ...errors(400, 401, 403, 404),
        },
      },
    },
    async (request) => {
      const session = await ownSession(request);
      const { limit, cursor } = request.query;
      const page = await useCases.checkpoints.list(session, Number(limit ?? '50'), cursor);
      return { checkpoints: page.items.map(toCheckpointJson), nextCursor: page.nextCursor };
    },
  );

  app.post(
    '/v1/sessions/:sessionId/revert',
    {
      schema: {
        summary: "Brings the session's thread back to one of its checkpoints, as a new commit",
        params: SessionParams,
        body: Type.Object(
          { checkpoint: Type.String({ pattern: '^[0-9a-f]{40}([0-9a-f]{24})?$' }) },
          { additionalProperties: false },
        ),
        response: {
          202: Type.Object({
            sessionId: Type.String(),
            threadId: Type.String(),
            checkpoint: Type.String(),
            requestId: Type.String(),
          }),
          ...errors(400, 401, 403, 404, 409),
        },
      },
    },
    async (request, reply) => {
      const session = await ownSession(request);
      const requestId = `revert-${randomUUID()}`;
      await useCases.checkpoints.revert(session, request.body.checkpoint, requestId);
      return reply.code(202).send({
        sessionId: session.sessionId,
        threadId: session.threadId ?? '',
        checkpoint: request.body.checkpoint,
        requestId,
      });
    },
  );
}
