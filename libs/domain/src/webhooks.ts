/**
 * Signed webhooks (issue 18, item 2): a client's subscription, the rules its URL must meet
 * (scheme, and no private, link-local or metadata address: SSRF), which events it takes, and
 * the delivery records the webhook service keeps. No I/O: DNS and HTTP are the adapters'.
 */
import ipaddr from 'ipaddr.js';
import Type, { type Static } from 'typebox';
import { InvalidArgumentError } from './errors.ts';
import { EVENT_TYPES, type BerthEvent, type EventType } from './events.ts';
import { isIdPart, parseContainerId } from './identity.ts';
import type { Page } from './ports.ts';

export const WEBHOOK_SECRET_MIN = 16;
export const WEBHOOK_SECRET_MAX = 256;
export const WEBHOOK_URL_MAX = 2048;
export const WEBHOOK_EVENTS_MAX = 32;

/** The body of `PUT /v1/webhooks/{clientId}`. */
export const WebhookInputSchema = Type.Object(
  {
    url: Type.String({ minLength: 1, maxLength: WEBHOOK_URL_MAX }),
    events: Type.Array(Type.String({ minLength: 1, maxLength: 64 }), {
      minItems: 1,
      maxItems: WEBHOOK_EVENTS_MAX,
    }),
    secret: Type.String({ minLength: WEBHOOK_SECRET_MIN, maxLength: WEBHOOK_SECRET_MAX }),
  },
  { additionalProperties: false },
);
export type WebhookInput = Static<typeof WebhookInputSchema>;

/** A subscription as stored. The secret never leaves the store but to sign a delivery. */
export interface WebhookSubscription {
  clientId: string;
  url: string;
  events: string[];
  secret: string;
  createdAt: string;
  updatedAt: string;
}

/** A subscription as answered: never the secret. */
export interface WebhookJson {
  clientId: string;
  url: string;
  events: string[];
  createdAt: string;
  updatedAt: string;
}

export function toWebhookJson(subscription: WebhookSubscription): WebhookJson {
  return {
    clientId: subscription.clientId,
    url: subscription.url,
    events: [...subscription.events],
    createdAt: subscription.createdAt,
    updatedAt: subscription.updatedAt,
  };
}

// ---------------------------------------------------------------------------------------------
// Which events a subscription takes

const EVENT_FAMILIES = [...new Set(EVENT_TYPES.map((type) => type.split('.')[0] ?? ''))];

/**
 * An event pattern is `*` (every event), `<family>.*` (`container.*`, `session.*`,
 * `command.*`) or one of the contract's event types.
 */
export function assertEventPattern(pattern: string, field: string): void {
  if (pattern === '*') return;
  if (pattern.endsWith('.*') && EVENT_FAMILIES.includes(pattern.slice(0, -2))) return;
  if ((EVENT_TYPES as readonly string[]).includes(pattern)) return;
  throw new InvalidArgumentError(
    `${field} must be "*", one of ${EVENT_FAMILIES.map((f) => `"${f}.*"`).join(', ')} or an event type (${EVENT_TYPES.join(', ')}); got "${pattern}"`,
    field,
  );
}

export function matchesEventPatterns(patterns: readonly string[], type: EventType): boolean {
  return patterns.some(
    (pattern) =>
      pattern === '*' ||
      pattern === type ||
      (pattern.endsWith('.*') && type.startsWith(pattern.slice(0, -1))),
  );
}

/**
 * The container an event is about, which orders its deliveries and names its client; null
 * for an event about no container (a malformed command), which no webhook receives.
 */
export function webhookStreamOf(
  event: BerthEvent,
): { containerId: string; clientId: string } | null {
  const fromPayload = (event.payload['container'] as { containerId?: unknown } | undefined)
    ?.containerId;
  const containerId =
    event.containerId ?? (typeof fromPayload === 'string' ? fromPayload : undefined);
  if (containerId === undefined) return null;
  try {
    return { containerId, clientId: parseContainerId(containerId).clientId };
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------------------------------------
// Where a webhook may point (SSRF)

/** What the deployment allows (BERTH_WEBHOOK_ALLOW_HTTP, BERTH_WEBHOOK_ALLOWED_NETWORKS). */
export interface WebhookNetworkPolicy {
  /** `http:` URLs too (the local stack); otherwise `https:` only. */
  allowHttp: boolean;
  /** CIDRs exempt from the private-address refusal, e.g. `127.0.0.1/32` locally. */
  allowedNetworks: readonly string[];
}

export const STRICT_WEBHOOK_NETWORK_POLICY: WebhookNetworkPolicy = {
  allowHttp: false,
  allowedNetworks: [],
};

/**
 * Instance metadata and credentials endpoints (EC2 IMDS over IPv4 and IPv6, the ECS task
 * credentials endpoint): refused whatever the deployment allows, since a request there from
 * berth's network hands out its role's credentials.
 */
const METADATA_ADDRESSES = ['169.254.169.254', '169.254.170.2', '169.254.170.23', 'fd00:ec2::254'];

type Cidr = [ipaddr.IPv4 | ipaddr.IPv6, number];

/** Parses BERTH_WEBHOOK_ALLOWED_NETWORKS' items; a bad one is named. */
export function parseNetworks(items: readonly string[], field: string): Cidr[] {
  return items.map((item) => {
    try {
      return ipaddr.parseCIDR(item);
    } catch {
      throw new InvalidArgumentError(
        `${field} must be a comma-separated list of CIDRs (e.g. 127.0.0.1/32,::1/128); "${item}" is not one`,
        field,
      );
    }
  });
}

/**
 * Why berth refuses to send to `address` (an IP literal), or null when it may. Only globally
 * routable unicast addresses are allowed (ipaddr.js's `unicast` range: not private, loopback,
 * link-local, unique-local, unspecified, multicast, carrier-grade NAT, reserved...), an
 * IPv4-mapped IPv6 address counting as its IPv4 address; a network the deployment allows
 * lifts the refusal, except for the metadata endpoints.
 */
export function refusedAddressReason(address: string, policy: WebhookNetworkPolicy): string | null {
  let parsed: ipaddr.IPv4 | ipaddr.IPv6;
  try {
    // process(): ::ffff:10.0.0.1 is 10.0.0.1, so the mapped form cannot hide a private address.
    parsed = ipaddr.process(address);
  } catch {
    return `${address} is not an IP address`;
  }
  const normal = parsed.toNormalizedString();
  if (METADATA_ADDRESSES.some((meta) => ipaddr.process(meta).toNormalizedString() === normal)) {
    return `${address} is an instance metadata or credentials address`;
  }
  const range = parsed.range();
  if (range === 'unicast') return null;
  const allowed = parseNetworks(policy.allowedNetworks, 'BERTH_WEBHOOK_ALLOWED_NETWORKS').some(
    ([network, bits]) => network.kind() === parsed.kind() && parsed.match(network, bits),
  );
  if (allowed) return null;
  return `${address} is a ${range} address, not a public one (allow it with BERTH_WEBHOOK_ALLOWED_NETWORKS)`;
}

/** The host of a URL as an IP literal (brackets of IPv6 removed), or null for a name. */
export function ipLiteralOf(hostname: string): string | null {
  const bare =
    hostname.startsWith('[') && hostname.endsWith(']') ? hostname.slice(1, -1) : hostname;
  return ipaddr.isValid(bare) ? bare : null;
}

/**
 * Checks a webhook URL's form and, when its host is an IP literal, its address. A host name
 * is resolved and checked by the caller (at the PUT and again at every delivery, since DNS
 * may answer differently later).
 */
export function parseWebhookUrl(raw: string, policy: WebhookNetworkPolicy): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new InvalidArgumentError(`url must be an absolute URL; got "${raw}"`, 'url');
  }
  const schemes = policy.allowHttp ? ['https:', 'http:'] : ['https:'];
  if (!schemes.includes(url.protocol)) {
    throw new InvalidArgumentError(
      policy.allowHttp
        ? `url must be https or http; got ${url.protocol}`
        : `url must be https (http is allowed only where BERTH_WEBHOOK_ALLOW_HTTP=true); got ${url.protocol}`,
      'url',
    );
  }
  if (url.username !== '' || url.password !== '') {
    throw new InvalidArgumentError(
      'url must not carry credentials; the signature authenticates berth to the receiver',
      'url',
    );
  }
  if (url.hash !== '') throw new InvalidArgumentError('url must not have a #fragment', 'url');
  const literal = ipLiteralOf(url.hostname);
  if (literal !== null) {
    const reason = refusedAddressReason(literal, policy);
    if (reason !== null) throw new InvalidArgumentError(`url is refused: ${reason}`, 'url');
  } else if (url.hostname === 'localhost' || url.hostname.endsWith('.localhost')) {
    // Resolvers answer these without asking DNS; name the rule rather than an address.
    const reason = refusedAddressReason('127.0.0.1', policy);
    if (reason !== null) throw new InvalidArgumentError(`url is refused: ${reason}`, 'url');
  }
  return url;
}

/** Checks a `PUT /v1/webhooks/{clientId}` body beyond its shape; every problem names its field. */
export function parseWebhookInput(input: WebhookInput, policy: WebhookNetworkPolicy): WebhookInput {
  parseWebhookUrl(input.url, policy);
  input.events.forEach((pattern, index) => assertEventPattern(pattern, `events[${index}]`));
  if (input.secret.trim() !== input.secret || /[\r\n\0]/.test(input.secret)) {
    throw new InvalidArgumentError(
      'secret must not begin or end with whitespace nor hold line breaks or NUL',
      'secret',
    );
  }
  return { url: input.url, events: [...new Set(input.events)], secret: input.secret };
}

export function assertWebhookClientId(clientId: string): void {
  if (!isIdPart(clientId)) {
    throw new InvalidArgumentError(`clientId is invalid: ${JSON.stringify(clientId)}`, 'clientId');
  }
}

// ---------------------------------------------------------------------------------------------
// Deliveries

export const DELIVERY_STATUSES = ['pending', 'delivered', 'dead'] as const;
export type DeliveryStatus = (typeof DELIVERY_STATUSES)[number];

/** One event for one client's webhook, from its enqueueing until delivered or dead. */
export interface WebhookDelivery {
  clientId: string;
  containerId: string;
  eventId: string;
  eventType: EventType;
  occurredAt: string;
  /** The event's JSON, exactly the body POSTed (and signed) at every attempt. */
  body: string;
  status: DeliveryStatus;
  attempts: number;
  createdAt: string;
  /** When the next attempt is due (pending only). */
  nextAttemptAt: string | null;
  lastAttemptAt: string | null;
  /** The last attempt's outcome, e.g. `HTTP 500` or `timeout after 10s`; never a secret. */
  lastError: string | null;
  lastStatusCode: number | null;
  deliveredAt: string | null;
  deadAt: string | null;
}

export interface DeliveryJson {
  eventId: string;
  eventType: EventType;
  containerId: string;
  occurredAt: string;
  status: DeliveryStatus;
  attempts: number;
  createdAt: string;
  nextAttemptAt: string | null;
  lastAttemptAt: string | null;
  lastStatusCode: number | null;
  lastError: string | null;
  deliveredAt: string | null;
  deadAt: string | null;
}

export function toDeliveryJson(delivery: WebhookDelivery): DeliveryJson {
  return {
    eventId: delivery.eventId,
    eventType: delivery.eventType,
    containerId: delivery.containerId,
    occurredAt: delivery.occurredAt,
    status: delivery.status,
    attempts: delivery.attempts,
    createdAt: delivery.createdAt,
    nextAttemptAt: delivery.nextAttemptAt,
    lastAttemptAt: delivery.lastAttemptAt,
    lastStatusCode: delivery.lastStatusCode,
    lastError: delivery.lastError,
    deliveredAt: delivery.deliveredAt,
    deadAt: delivery.deadAt,
  };
}

/** The longest wait between two attempts, however many failed. */
export const WEBHOOK_RETRY_CAP_MS = 60 * 60 * 1000;

/**
 * The wait after the `attempt`-th failed attempt (1-based): exponential from `baseMs`
 * (10 s, 20 s, 40 s ... by default), capped at an hour, with "equal jitter" (between half and
 * all of it, `random` in [0, 1)) so that receivers coming back from an outage are not hit by
 * every sender at once.
 */
export function webhookRetryDelayMs(attempt: number, baseMs: number, random: number): number {
  const exponential = Math.min(baseMs * 2 ** Math.max(0, attempt - 1), WEBHOOK_RETRY_CAP_MS);
  return Math.round(exponential / 2 + (exponential / 2) * random);
}

/** How a client's deliveries are stored and found again (the webhook table). */
export interface WebhookStore {
  getSubscription(clientId: string): Promise<WebhookSubscription | null>;
  putSubscription(subscription: WebhookSubscription): Promise<void>;
  /** True when there was one. */
  deleteSubscription(clientId: string): Promise<boolean>;
  /** Stores a new pending delivery; false when one for this client and event exists (a duplicate). */
  addDelivery(delivery: WebhookDelivery): Promise<boolean>;
  /**
   * Pending deliveries due at `now` or before, oldest due first. A delivery waiting behind its
   * stream's head is parked (`parkDelivery`) and no longer listed, so one client's backlog
   * never fills the page that other clients' heads are read from.
   */
  dueDeliveries(now: string, limit: number, cursor?: string): Promise<Page<WebhookDelivery>>;
  /** The oldest pending delivery of a container's stream (its head), if any. */
  streamHead(containerId: string): Promise<WebhookDelivery | null>;
  /** Takes a delivery that is not its stream's head out of the due listing; false if it was promoted meanwhile. */
  parkDelivery(delivery: WebhookDelivery): Promise<boolean>;
  /** Makes a stream's new head due at `now` (and never parked again). */
  promoteDelivery(delivery: WebhookDelivery, now: string): Promise<void>;
  /** A page of parked deliveries (the sweep promotes those that became heads). */
  parkedDeliveries(limit: number, cursor?: string): Promise<Page<WebhookDelivery>>;
  /**
   * Takes a due delivery for one attempt: moves its next attempt to `leaseUntil`, on the
   * condition that it is still pending with the attempts and due time read. False when
   * another worker took it first.
   */
  claimDelivery(delivery: WebhookDelivery, leaseUntil: string): Promise<boolean>;
  /** Writes the attempt's outcome (delivered, pending again, or dead). */
  recordAttempt(delivery: WebhookDelivery): Promise<void>;
  listDeliveries(
    clientId: string,
    options: { status?: DeliveryStatus; limit: number; cursor?: string },
  ): Promise<Page<WebhookDelivery>>;
}
