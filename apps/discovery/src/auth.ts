import { ForbiddenError, UnauthenticatedError, type ContainerKey } from '@berth/domain';
import { createVerifier } from 'fast-jwt';

export const ROLES = ['user', 'service', 'admin'] as const;
export type Role = (typeof ROLES)[number];

/** Who is calling, from verified token claims only. */
export interface Principal {
  clientId: string;
  userId: string;
  role: Role;
}

export function principalFromClaims(claims: unknown): Principal {
  if (typeof claims !== 'object' || claims === null) {
    throw new UnauthenticatedError('token has no claims');
  }
  const { client, sub, role } = claims as Record<string, unknown>;
  if (typeof client !== 'string' || client === '')
    throw new UnauthenticatedError('token lacks the "client" claim');
  if (typeof sub !== 'string' || sub === '')
    throw new UnauthenticatedError('token lacks the "sub" claim');
  if (typeof role !== 'string' || !(ROLES as readonly string[]).includes(role)) {
    throw new UnauthenticatedError('token "role" claim must be user, service or admin');
  }
  return { clientId: client, userId: sub, role: role as Role };
}

/**
 * `user` acts on its own client and user only, `service` on any user of its client, `admin`
 * on everything. The answer does not depend on whether the container exists.
 */
export function assertMayAct(
  principal: Principal,
  key: Pick<ContainerKey, 'clientId'> & { userId?: string },
): void {
  if (principal.role === 'admin') return;
  if (key.clientId !== principal.clientId) {
    throw new ForbiddenError(`not allowed to act on client ${key.clientId}`);
  }
  if (principal.role === 'user' && key.userId !== principal.userId) {
    throw new ForbiddenError(`not allowed to act on another user's containers`);
  }
}

/** `assertMayAct` as a question; a key that is absent (a session never assigned) is admins' only. */
export function mayAct(
  principal: Principal,
  key: (Pick<ContainerKey, 'clientId'> & { userId?: string }) | undefined,
): boolean {
  if (principal.role === 'admin') return true;
  if (!key || key.clientId !== principal.clientId) return false;
  return principal.role !== 'user' || key.userId === principal.userId;
}

/** Narrows a list query to what the caller may see, refusing explicit filters beyond it. */
export function scopeListFilter<T extends { clientId?: string; userId?: string }>(
  principal: Principal,
  filter: T,
): T {
  if (principal.role === 'admin') return filter;
  if (filter.clientId !== undefined && filter.clientId !== principal.clientId) {
    throw new ForbiddenError(`not allowed to list containers of client ${filter.clientId}`);
  }
  if (
    principal.role === 'user' &&
    filter.userId !== undefined &&
    filter.userId !== principal.userId
  ) {
    throw new ForbiddenError(`not allowed to list another user's containers`);
  }
  return {
    ...filter,
    clientId: principal.clientId,
    ...(principal.role === 'user' ? { userId: principal.userId } : {}),
  };
}

/** Verified tokens kept at once; a client typically reuses one token for many requests. */
const VERIFIED_TOKENS = 10_000;
/** Longest a verified token is trusted without checking it again (never beyond its `exp`). */
const VERIFIED_TOKEN_TTL_MS = 10 * 60_000;

/**
 * HS256 verification with fast-jwt, caching each verified token for its lifetime (bounded:
 * 10,000 tokens, LRU, at most 10 minutes and never past `exp` or before `nbf`). A client sends
 * the same token request after request, and re-checking its HMAC and re-parsing its JSON was
 * most of a cached discover's CPU. The cache key is the whole token, so a different header or
 * payload under a known signature is never a hit; failures are not cached. Throws
 * UnauthenticatedError for a token that is not valid now.
 */
export function createTokenVerifier(secret: string): (token: string) => Principal {
  const verify = createVerifier({
    key: secret,
    algorithms: ['HS256'],
    cache: VERIFIED_TOKENS,
    cacheTTL: VERIFIED_TOKEN_TTL_MS,
    cacheKeyBuilder: (token: string) => token,
  });
  return (token) => {
    let claims: unknown;
    try {
      claims = verify(token);
    } catch {
      throw new UnauthenticatedError('the bearer token is invalid or expired');
    }
    return principalFromClaims(claims);
  };
}
