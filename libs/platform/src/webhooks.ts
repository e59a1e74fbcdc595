/**
 * The network side of signed webhooks: DNS resolution and the HTTP POST of a delivery, with
 * the SSRF rules checked on the very addresses connected to (docs/design.md, "Signed
 * webhooks"), and the wiring of the webhook store for a service.
 */
import { lookup } from 'node:dns/promises';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { LookupFunction } from 'node:net';
import {
  WebhookSubscriptions,
  type HostResolver,
  type SendOutcome,
  type WebhookSender,
} from '@berth/core';
import {
  NotFoundError,
  UnavailableError,
  ipLiteralOf,
  refusedAddressReason,
  systemClock,
  type BerthConfig,
  type WebhookNetworkPolicy,
} from '@berth/domain';
import { DynamoWebhookStore } from '@berth/dynamodb';
import type { Wiring } from './wiring.ts';

const NO_ADDRESS = new Set(['ENOTFOUND', 'ENODATA', 'EAI_NONAME', 'EAI_NODATA']);

/** Every address the system resolver gives for `hostname` (as a connection would see them). */
export const lookupHost: HostResolver = async (hostname) => {
  try {
    const answers = await lookup(hostname, { all: true, verbatim: true });
    if (answers.length === 0) throw new NotFoundError(`${hostname} has no address`);
    return answers.map((answer) => answer.address);
  } catch (error) {
    if (error instanceof NotFoundError) throw error;
    const code = (error as { code?: unknown }).code;
    if (typeof code === 'string' && NO_ADDRESS.has(code)) {
      throw new NotFoundError(`${hostname} does not resolve (${code})`);
    }
    throw new UnavailableError(`resolving ${hostname} failed: ${String(code ?? error)}`, {
      cause: error,
    });
  }
};

/** At most this much of an answer's body is read (and dropped): only the status counts. */
const MAX_ANSWER_BYTES = 64 * 1024;

/**
 * POSTs deliveries with node:http(s). The host is resolved first and every address checked
 * (a name that resolves to a private address is refused, whatever it resolved to at the
 * PUT: DNS rebinding); the connection is then pinned to the checked address through the
 * request's `lookup`, so a second resolution cannot swap it. TLS still verifies the host
 * name. Redirects are not followed (a 3xx is a failed attempt).
 */
export class HttpWebhookSender implements WebhookSender {
  readonly #network: WebhookNetworkPolicy;
  readonly #resolve: HostResolver;

  constructor(options: { network: WebhookNetworkPolicy; resolveHost?: HostResolver }) {
    this.#network = options.network;
    this.#resolve = options.resolveHost ?? lookupHost;
  }

  async post(request: {
    url: string;
    body: string;
    headers: Record<string, string>;
    timeoutMs: number;
  }): Promise<SendOutcome> {
    const url = new URL(request.url);
    const literal = ipLiteralOf(url.hostname);
    let addresses: string[];
    try {
      addresses = literal === null ? await this.#resolve(url.hostname) : [literal];
    } catch (error) {
      return {
        ok: false,
        statusCode: null,
        error: `dns: ${(error as Error).message}`,
        permanent: false,
      };
    }
    for (const address of addresses) {
      const reason = refusedAddressReason(address, this.#network);
      if (reason !== null) {
        return { ok: false, statusCode: null, error: `refused: ${reason}`, permanent: true };
      }
    }
    const pinned = addresses[0] ?? '';
    const family = pinned.includes(':') ? 6 : 4;
    const pinnedLookup: LookupFunction = (_hostname, options, callback) => {
      if (options.all) callback(null, [{ address: pinned, family }]);
      else callback(null, pinned, family);
    };
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
    return new Promise<SendOutcome>((resolve) => {
      const signal = AbortSignal.timeout(request.timeoutMs);
      const req = send(
        url,
        {
          method: 'POST',
          headers: {
            ...request.headers,
            'content-length': String(Buffer.byteLength(request.body)),
            'user-agent': 'berth-webhooks/1',
          },
          lookup: pinnedLookup,
          signal,
          agent: false,
        },
        (answer: IncomingMessage) => {
          let read = 0;
          answer.on('data', (chunk: Buffer) => {
            read += chunk.length;
            if (read > MAX_ANSWER_BYTES) answer.destroy();
          });
          const done = () => {
            const status = answer.statusCode ?? 0;
            resolve(
              status >= 200 && status < 300
                ? { ok: true, statusCode: status }
                : { ok: false, statusCode: status, error: `HTTP ${status}`, permanent: false },
            );
          };
          answer.on('end', done);
          answer.on('close', done);
          answer.on('error', done);
        },
      );
      req.on('error', (error: Error & { code?: string }) => {
        resolve({
          ok: false,
          statusCode: null,
          error: signal.aborted
            ? `timeout after ${request.timeoutMs} ms`
            : `${error.code ?? error.name}: ${error.message}`,
          permanent: false,
        });
      });
      req.end(request.body);
    });
  }
}

/** The webhook store on this service's DynamoDB client, and the routes' use case. */
export function webhookSubscriptions(config: BerthConfig, wiring: Wiring): WebhookSubscriptions {
  return new WebhookSubscriptions({
    store: new DynamoWebhookStore({
      client: wiring.clients.dynamodb,
      table: config.webhooks.table,
    }),
    clock: systemClock,
    network: config.webhooks.network,
    resolveHost: lookupHost,
  });
}
