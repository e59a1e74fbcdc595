import type { UseCases } from '@berth/core';
import { NotFoundError, OPAQUE_ID_PATTERN, parseContainerId, toSessionJson } from '@berth/domain';
import Type from 'typebox';
import { mayAct } from '../auth.ts';
import { errors, type DiscoveryServer } from './schemas.ts';

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
    async (request) => {
      const session = await useCases.sessions.get(request.params.sessionId);
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
}
