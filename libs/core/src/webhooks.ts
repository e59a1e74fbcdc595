/**
 * Signed webhooks (docs/design.md, "Signed webhooks"): a client's subscription (the routes),
 * and the delivery of lifecycle events to it (the webhook service): queued per container in
 * the webhook table, sent in order per container, retried with backoff for the retry window,
 * then dead-lettered. One client's slow or silent endpoint holds only that client's lanes.
 */
import { signWebhook, SIGNATURE_HEADER } from '@berth/webhook-signature';
import {
  InvalidArgumentError,
  NotFoundError,
  UnavailableError,
  assertWebhookClientId,
  ipLiteralOf,
  matchesEventPatterns,
  parseWebhookInput,
  parseWebhookUrl,
  refusedAddressReason,
  webhookRetryDelayMs,
  webhookStreamOf,
  type BerthEvent,
  type Clock,
  type DeliveryStatus,
  type Logger,
  type Page,
  type WebhookDelivery,
  type WebhookInput,
  type WebhookNetworkPolicy,
  type WebhookStore,
  type WebhookSubscription,
} from '@berth/domain';

/** Resolves a host name to its addresses (DNS); throws `NotFoundError` when it has none. */
export type HostResolver = (hostname: string) => Promise<string[]>;

/** One attempt's outcome, as the HTTP adapter saw it. */
export type SendOutcome =
  | { ok: true; statusCode: number }
  /** `permanent`: no retry can succeed (the address is refused); dead-lettered at once. */
  | { ok: false; statusCode: number | null; error: string; permanent: boolean };

/** POSTs one delivery; checks the resolved address again (SSRF) and pins the connection to it. */
export interface WebhookSender {
  post(request: {
    url: string;
    body: string;
    headers: Record<string, string>;
    timeoutMs: number;
  }): Promise<SendOutcome>;
}

export interface WebhookSubscriptionsDeps {
  store: WebhookStore;
  clock: Clock;
  network: WebhookNetworkPolicy;
  resolveHost: HostResolver;
}

/** The routes' side: `PUT`/`GET`/`DELETE /v1/webhooks/{clientId}` and the delivery listing. */
export class WebhookSubscriptions {
  readonly #deps: WebhookSubscriptionsDeps;

  constructor(deps: WebhookSubscriptionsDeps) {
    this.#deps = deps;
  }

  async get(clientId: string): Promise<WebhookSubscription> {
    assertWebhookClientId(clientId);
    const subscription = await this.#deps.store.getSubscription(clientId);
    if (!subscription) throw new NotFoundError(`client ${clientId} has no webhook`);
    return subscription;
  }

  async put(clientId: string, input: WebhookInput): Promise<WebhookSubscription> {
    assertWebhookClientId(clientId);
    const checked = parseWebhookInput(input, this.#deps.network);
    await assertResolvesToAllowed(checked.url, this.#deps.network, this.#deps.resolveHost);
    const now = this.#deps.clock.now().toISOString();
    const before = await this.#deps.store.getSubscription(clientId);
    const subscription: WebhookSubscription = {
      clientId,
      url: checked.url,
      events: checked.events,
      secret: checked.secret,
      createdAt: before?.createdAt ?? now,
      updatedAt: now,
    };
    await this.#deps.store.putSubscription(subscription);
    return subscription;
  }

  async delete(clientId: string): Promise<void> {
    assertWebhookClientId(clientId);
    if (!(await this.#deps.store.deleteSubscription(clientId))) {
      throw new NotFoundError(`client ${clientId} has no webhook`);
    }
  }

  deliveries(
    clientId: string,
    options: { status?: DeliveryStatus; limit: number; cursor?: string },
  ): Promise<Page<WebhookDelivery>> {
    assertWebhookClientId(clientId);
    return this.#deps.store.listDeliveries(clientId, options);
  }
}

/**
 * The URL's host, resolved now, must have only allowed addresses (a literal was checked with
 * the form). The delivery checks again, on the addresses it connects to.
 */
async function assertResolvesToAllowed(
  raw: string,
  network: WebhookNetworkPolicy,
  resolveHost: HostResolver,
): Promise<void> {
  const url = parseWebhookUrl(raw, network);
  if (ipLiteralOf(url.hostname) !== null) return;
  let addresses: string[];
  try {
    addresses = await resolveHost(url.hostname);
  } catch (error) {
    if (error instanceof NotFoundError) {
      throw new InvalidArgumentError(`url's host ${url.hostname} does not resolve`, 'url');
    }
    throw error;
  }
  for (const address of addresses) {
    const reason = refusedAddressReason(address, network);
    if (reason !== null) {
      throw new InvalidArgumentError(
        `url is refused: ${url.hostname} resolves to ${reason}`,
        'url',
      );
    }
  }
}

export interface WebhookDeliveriesDeps {
  store: WebhookStore;
  sender: WebhookSender;
  clock: Clock;
  log: Logger;
  timeoutMs: number;
  retryBaseMs: number;
  retryWindowMs: number;
  concurrencyPerClient: number;
  /** In [0, 1); the retry jitter. */
  random?: () => number;
  /** How long a subscription read is reused when events arrive; default 5 s. */
  subscriptionCacheMs?: number;
  /** Due deliveries read per pass. */
  pageSize?: number;
  /** Called with each finished attempt (metrics, tests). */
  onAttempt?: (delivery: WebhookDelivery) => void;
}

/**
 * The webhook service's side: queues each event for its client's webhook (`accept`), and
 * sends what is due (`pass`), each container's deliveries one at a time and in order, at
 * most `concurrencyPerClient` of one client's at once. Sends are never awaited by a pass: a
 * client whose endpoint does not answer holds its own lanes until the timeout, nothing else.
 */
export class WebhookDeliveries {
  readonly #deps: WebhookDeliveriesDeps;
  readonly #random: () => number;
  readonly #inFlightStreams = new Set<string>();
  readonly #inFlightPerClient = new Map<string, number>();
  readonly #sends = new Set<Promise<void>>();
  readonly #subscriptions = new Map<string, { read: number; value: WebhookSubscription | null }>();
  #parkedCursor: string | undefined;
  /** Wakes the service's loop when a lane frees or an event was queued. */
  onWork: () => void = () => undefined;

  constructor(deps: WebhookDeliveriesDeps) {
    this.#deps = deps;
    this.#random = deps.random ?? Math.random;
  }

  async #subscription(clientId: string, fresh: boolean): Promise<WebhookSubscription | null> {
    const now = Date.now();
    const cached = this.#subscriptions.get(clientId);
    if (!fresh && cached && now - cached.read < (this.#deps.subscriptionCacheMs ?? 5000)) {
      return cached.value;
    }
    const value = await this.#deps.store.getSubscription(clientId);
    this.#subscriptions.set(clientId, { read: now, value });
    return value;
  }

  /**
   * Queues `event` for its client's webhook when it subscribes to its type. True when a
   * delivery was queued; a redelivered event (same eventId) queues nothing new.
   */
  async accept(event: BerthEvent): Promise<boolean> {
    const stream = webhookStreamOf(event);
    if (stream === null) return false;
    const subscription = await this.#subscription(stream.clientId, false);
    if (!subscription || !matchesEventPatterns(subscription.events, event.type)) return false;
    const now = this.#deps.clock.now().toISOString();
    const added = await this.#deps.store.addDelivery({
      clientId: stream.clientId,
      containerId: stream.containerId,
      eventId: event.eventId,
      eventType: event.type,
      occurredAt: event.occurredAt,
      body: JSON.stringify(event),
      status: 'pending',
      attempts: 0,
      createdAt: now,
      nextAttemptAt: now,
      lastAttemptAt: null,
      lastError: null,
      lastStatusCode: null,
      deliveredAt: null,
      deadAt: null,
    });
    if (added) this.onWork();
    return added;
  }

  /** Attempts started and not yet recorded. */
  get inFlight(): number {
    return this.#sends.size;
  }

  /** Waits for every attempt started so far (shutdown, tests). */
  async drain(): Promise<void> {
    while (this.#sends.size > 0) await Promise.allSettled([...this.#sends]);
  }

  #hasLane(clientId: string): boolean {
    return (this.#inFlightPerClient.get(clientId) ?? 0) < this.#deps.concurrencyPerClient;
  }

  /**
   * One pass over what is due: a due delivery behind its stream's head is parked (it leaves
   * the due listing until the head ends); a head is started when its container has nothing in
   * flight and its client a free lane. Reads up to `maxPages` pages, so heads of clients whose
   * lanes are full cannot hide other clients' behind them. Returns the attempts started.
   */
  async pass(maxPages = 5): Promise<number> {
    const now = this.#deps.clock.now();
    const heads = new Map<string, WebhookDelivery | null>();
    let started = 0;
    let cursor: string | undefined;
    for (let page = 0; page < maxPages; page += 1) {
      const due = await this.#deps.store.dueDeliveries(
        now.toISOString(),
        this.#deps.pageSize ?? 100,
        cursor,
      );
      for (const delivery of due.items) {
        if (!heads.has(delivery.containerId)) {
          heads.set(delivery.containerId, await this.#deps.store.streamHead(delivery.containerId));
        }
        const head = heads.get(delivery.containerId) ?? null;
        if (head === null) continue;
        if (head.eventId !== delivery.eventId) {
          await this.#deps.store.parkDelivery(delivery);
          continue;
        }
        if (await this.#start(head, now)) started += 1;
      }
      if (due.nextCursor === null) break;
      cursor = due.nextCursor;
    }
    return started;
  }

  /**
   * Promotes parked deliveries that became their stream's head without being promoted (a
   * worker that died between a head's end and the promotion); a page per call.
   */
  async sweepParked(pageSize = 100): Promise<number> {
    const page = await this.#deps.store.parkedDeliveries(pageSize, this.#parkedCursor);
    this.#parkedCursor = page.nextCursor ?? undefined;
    let promoted = 0;
    const now = this.#deps.clock.now().toISOString();
    for (const delivery of page.items) {
      const head = await this.#deps.store.streamHead(delivery.containerId);
      if (head?.eventId === delivery.eventId) {
        await this.#deps.store.promoteDelivery(delivery, now);
        promoted += 1;
      }
    }
    if (promoted > 0) this.onWork();
    return promoted;
  }

  async #start(head: WebhookDelivery, now: Date): Promise<boolean> {
    if (head.nextAttemptAt !== null && head.nextAttemptAt > now.toISOString()) return false;
    if (this.#inFlightStreams.has(head.containerId) || !this.#hasLane(head.clientId)) return false;
    // The lease covers the attempt; a worker that dies during it leaves the delivery due again.
    const leaseUntil = new Date(now.getTime() + this.#deps.timeoutMs + 30_000).toISOString();
    this.#inFlightStreams.add(head.containerId);
    this.#inFlightPerClient.set(
      head.clientId,
      (this.#inFlightPerClient.get(head.clientId) ?? 0) + 1,
    );
    let claimed = false;
    try {
      claimed = await this.#deps.store.claimDelivery(head, leaseUntil);
    } finally {
      if (!claimed) this.#release(head);
    }
    if (!claimed) return false;
    const send: Promise<void> = this.#attempt(head)
      .catch((error: unknown) => {
        // The lease makes it due again: nothing is lost, the next pass retries it.
        this.#deps.log.error(
          { err: error, clientId: head.clientId, eventId: head.eventId },
          'webhook attempt could not be recorded',
        );
      })
      .finally(() => {
        this.#release(head);
        this.#sends.delete(send);
        this.onWork();
      });
    this.#sends.add(send);
    return true;
  }

  #release(head: WebhookDelivery): void {
    this.#inFlightStreams.delete(head.containerId);
    const left = (this.#inFlightPerClient.get(head.clientId) ?? 1) - 1;
    if (left <= 0) this.#inFlightPerClient.delete(head.clientId);
    else this.#inFlightPerClient.set(head.clientId, left);
  }

  async #attempt(delivery: WebhookDelivery): Promise<void> {
    const subscription = await this.#subscription(delivery.clientId, true);
    const started = this.#deps.clock.now();
    const outcome: SendOutcome = subscription
      ? await this.#send(subscription, delivery, started)
      : { ok: false, statusCode: null, error: 'the webhook was removed', permanent: true };
    const finished = this.#deps.clock.now();
    const at = finished.toISOString();
    const attempts = delivery.attempts + 1;
    let next: WebhookDelivery;
    if (outcome.ok) {
      next = {
        ...delivery,
        status: 'delivered',
        attempts,
        lastAttemptAt: at,
        lastStatusCode: outcome.statusCode,
        lastError: null,
        nextAttemptAt: null,
        deliveredAt: at,
      };
    } else {
      const windowEnd = Date.parse(delivery.createdAt) + this.#deps.retryWindowMs;
      const wait = webhookRetryDelayMs(attempts, this.#deps.retryBaseMs, this.#random());
      const dead = outcome.permanent || finished.getTime() >= windowEnd;
      next = {
        ...delivery,
        status: dead ? 'dead' : 'pending',
        attempts,
        lastAttemptAt: at,
        lastStatusCode: outcome.statusCode,
        lastError: outcome.error,
        // The last attempt is made at the window's end, not skipped because a wait overshoots it.
        nextAttemptAt: dead
          ? null
          : new Date(Math.min(finished.getTime() + wait, windowEnd)).toISOString(),
        deadAt: dead ? at : null,
      };
    }
    await this.#deps.store.recordAttempt(next);
    this.#deps.onAttempt?.(next);
    if (next.status !== 'pending') {
      this.#deps.log[next.status === 'dead' ? 'warn' : 'info'](
        {
          clientId: next.clientId,
          containerId: next.containerId,
          eventId: next.eventId,
          attempts,
          lastStatusCode: next.lastStatusCode,
          lastError: next.lastError,
        },
        next.status === 'dead' ? 'webhook delivery dead-lettered' : 'webhook delivered',
      );
      // Its stream's next delivery, parked behind it, is due now.
      const head = await this.#deps.store.streamHead(next.containerId);
      if (head !== null) await this.#deps.store.promoteDelivery(head, at);
    }
  }

  async #send(
    subscription: WebhookSubscription,
    delivery: WebhookDelivery,
    now: Date,
  ): Promise<SendOutcome> {
    try {
      return await this.#deps.sender.post({
        url: subscription.url,
        body: delivery.body,
        headers: {
          'content-type': 'application/json',
          [SIGNATURE_HEADER]: signWebhook(
            subscription.secret,
            delivery.body,
            Math.floor(now.getTime() / 1000),
          ),
          'berth-event-id': delivery.eventId,
          'berth-event-type': delivery.eventType,
          'berth-delivery-attempt': String(delivery.attempts + 1),
        },
        timeoutMs: this.#deps.timeoutMs,
      });
    } catch (error) {
      if (error instanceof UnavailableError) {
        return { ok: false, statusCode: null, error: error.message, permanent: false };
      }
      throw error;
    }
  }
}
