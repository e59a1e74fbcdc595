import { ID_PART_PATTERN } from '@berth/domain';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type {
  FastifyBaseLogger,
  FastifyInstance,
  RawReplyDefaultExpression,
  RawRequestDefaultExpression,
  RawServerDefault,
} from 'fastify';
import Type from 'typebox';

/** The discovery app as its route files see it: schemas typed by TypeBox. */
export type DiscoveryServer = FastifyInstance<
  RawServerDefault,
  RawRequestDefaultExpression,
  RawReplyDefaultExpression,
  FastifyBaseLogger,
  TypeBoxTypeProvider
>;

export const IdPart = Type.String({ pattern: ID_PART_PATTERN });

export const ErrorSchema = Type.Object(
  {
    error: Type.Object({
      code: Type.String(),
      message: Type.String(),
      field: Type.Optional(Type.String()),
    }),
  },
  { $id: 'Error' },
);

/** The error answers a route documents, each the shared `Error` body. */
export const errors = (...statuses: number[]) =>
  Object.fromEntries(statuses.map((status) => [status, Type.Ref('Error')]));

/** The query fields of every paged listing: a page size and the cursor of the previous page. */
export const PageQuery = {
  limit: Type.Optional(
    Type.String({ pattern: '^([1-9][0-9]?|100)$', description: '1-100, default 50' }),
  ),
  cursor: Type.Optional(Type.String({ minLength: 1, maxLength: 2048 })),
};
