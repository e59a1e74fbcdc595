import { CONTAINER_ID_PATTERN } from '@berth/domain';

const CONTAINER_ID = new RegExp(CONTAINER_ID_PATTERN);

/** The path prefix of a container's preview in the path form. */
export const PREVIEW_PREFIX = '/p/';

/**
 * Why a raw request path may not be proxied, or undefined when it may. A preview must never
 * reach anything but its own container's dev server, so anything a server or a proxy on the
 * way could resolve to another place is refused before routing: dot segments (also
 * percent-encoded), encoded slashes and backslashes (a server that decodes them would see
 * another path than the gateway routed), NUL, and a path that does not start with `/`.
 */
export function unsafePathReason(rawUrl: string): string | undefined {
  const path = rawUrl.split('?', 1)[0] ?? '';
  if (!path.startsWith('/')) return 'the path must start with /';
  if (/%2f|%5c|%00|\\/i.test(path)) return 'encoded slashes, backslashes and NUL are refused';
  for (const segment of path.split('/')) {
    const decoded = segment.replace(/%2e/gi, '.');
    if (decoded === '.' || decoded === '..') return 'dot segments (. and ..) are refused';
  }
  return undefined;
}

/** The host name of a Host-like header value, lower case, without its port. */
export function hostName(value: string): string {
  const trimmed = value.trim().toLowerCase();
  if (trimmed.startsWith('[')) return trimmed.slice(0, trimmed.indexOf(']') + 1);
  const colon = trimmed.lastIndexOf(':');
  return colon === -1 ? trimmed : trimmed.slice(0, colon);
}

/**
 * The containerId a host name names in the host-name form (`<containerId>.<domain>`):
 * undefined when it is not under the preview domain, null when it is but names no valid
 * container.
 */
export function containerOfHost(
  host: string,
  domain: string | undefined,
): string | null | undefined {
  if (!domain) return undefined;
  const name = hostName(host);
  const suffix = `.${domain}`;
  if (!name.endsWith(suffix)) return undefined;
  const containerId = name.slice(0, -suffix.length);
  return CONTAINER_ID.test(containerId) ? containerId : null;
}

export function isContainerId(value: string): boolean {
  return CONTAINER_ID.test(value);
}
