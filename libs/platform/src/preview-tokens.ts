import { CONTAINER_ID_PATTERN } from '@berth/domain';
import { createSigner, createVerifier } from 'fast-jwt';

/**
 * Preview tokens (docs/design.md, "Preview URLs"). Signed with the same secret as API tokens
 * but with an audience of their own, and carrying only a containerId: a preview URL opens one
 * container's site and nothing else, and an API token is never accepted by the gateway (it has
 * no audience), nor a preview token by the API (it has no client, sub or role).
 *
 * - `berth-preview`: the token in a preview URL, minutes long, exchanged once for a cookie.
 * - `berth-preview-cookie`: what that cookie carries, valid for the preview's session.
 */
export const PREVIEW_URL_AUDIENCE = 'berth-preview';
export const PREVIEW_COOKIE_AUDIENCE = 'berth-preview-cookie';
export type PreviewAudience = typeof PREVIEW_URL_AUDIENCE | typeof PREVIEW_COOKIE_AUDIENCE;

/** The query parameter a preview URL carries its token in. */
export const PREVIEW_TOKEN_PARAMETER = 'berth_preview';
/** The cookie it is exchanged for (scoped by Path to one container). */
export const PREVIEW_COOKIE = 'berth_preview';

const CONTAINER_ID = new RegExp(CONTAINER_ID_PATTERN);

export interface PreviewToken {
  token: string;
  expiresAt: Date;
}

export function mintPreviewToken(
  secret: string,
  containerId: string,
  audience: PreviewAudience,
  ttlMs: number,
  now: Date = new Date(),
): PreviewToken {
  // `iat` from the caller's clock, so that the expiry below is exactly the token's.
  const sign = createSigner({ key: secret, algorithm: 'HS256', aud: audience });
  const iat = Math.floor(now.getTime() / 1000);
  const exp = iat + Math.max(1, Math.floor(ttlMs / 1000));
  return { token: sign({ cid: containerId, iat, exp }), expiresAt: new Date(exp * 1000) };
}

export type PreviewVerdict =
  { ok: true; containerId: string; expiresAt: Date } | { ok: false; reason: string };

/**
 * A verifier for one audience: the containerId a token opens, or why it opens nothing
 * (bad signature, expired, another audience, no containerId). Never throws.
 */
export function createPreviewTokenVerifier(
  secret: string,
  audience: PreviewAudience,
): (token: string) => PreviewVerdict {
  const verify = createVerifier({
    key: secret,
    algorithms: ['HS256'],
    allowedAud: audience,
    requiredClaims: ['exp', 'aud', 'cid'],
    cache: 10_000,
  });
  return (token) => {
    let claims: { cid?: unknown; exp?: unknown };
    try {
      claims = verify(token) as { cid?: unknown; exp?: unknown };
    } catch (error) {
      const code = (error as { code?: string }).code ?? '';
      return {
        ok: false,
        reason:
          code === 'FAST_JWT_EXPIRED' ? 'the preview token has expired' : 'invalid preview token',
      };
    }
    if (typeof claims.cid !== 'string' || !CONTAINER_ID.test(claims.cid)) {
      return { ok: false, reason: 'the preview token names no container' };
    }
    return {
      ok: true,
      containerId: claims.cid,
      expiresAt: new Date(Number(claims.exp) * 1000),
    };
  };
}

/**
 * A container's preview URL: the path form `<base>/p/<containerId>/` or, with a preview
 * domain, the host-name form `<scheme>://<containerId>.<domain>/`, carrying its token.
 */
export function previewUrl(
  options: { baseUrl: string; domain: string | undefined },
  containerId: string,
  token: string,
): string {
  const query = `?${PREVIEW_TOKEN_PARAMETER}=${encodeURIComponent(token)}`;
  if (options.domain) {
    const scheme = new URL(options.baseUrl).protocol;
    return `${scheme}//${containerId}.${options.domain}/${query}`;
  }
  return `${options.baseUrl}/p/${containerId}/${query}`;
}
