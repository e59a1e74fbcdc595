/**
 * berth's webhook signatures, for berth (signing) and for its clients (verifying).
 *
 * Every delivery carries `berth-signature: t=<unix seconds>,v1=<hex>` where `<hex>` is the
 * HMAC-SHA256, keyed with the webhook's secret, of `<t>.<body>` (the body exactly as
 * received, before any JSON parsing): the scheme Stripe uses. The timestamp is inside the
 * signed text, so a captured delivery cannot be replayed with a fresh `t`; a receiver refuses
 * a `t` further than the tolerance (default 300 s) from its own clock.
 *
 * Node only (node:crypto); no dependency. A receiver copies this one file if it does not
 * take the package.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

export const SIGNATURE_HEADER = 'berth-signature';
/** The receiver's default window, in seconds, either side of its clock. */
export const DEFAULT_TOLERANCE_SECONDS = 300;
const SCHEME = 'v1';

/** Why a delivery was refused; `reason` is stable, for tests and logs. */
export class WebhookSignatureError extends Error {
  readonly reason: 'malformed_header' | 'timestamp_out_of_tolerance' | 'signature_mismatch';

  constructor(reason: WebhookSignatureError['reason'], message: string) {
    super(message);
    this.name = 'WebhookSignatureError';
    this.reason = reason;
  }
}

function hmacHex(secret: string, timestamp: number, body: string | Uint8Array): string {
  const hmac = createHmac('sha256', secret);
  hmac.update(`${timestamp}.`);
  hmac.update(body);
  return hmac.digest('hex');
}

/** The header value for `body` signed with `secret` at `timestamp` (unix seconds). */
export function signWebhook(
  secret: string,
  body: string | Uint8Array,
  timestamp: number = Math.floor(Date.now() / 1000),
): string {
  if (!Number.isSafeInteger(timestamp) || timestamp < 0) {
    throw new RangeError(`timestamp must be a whole number of unix seconds; got ${timestamp}`);
  }
  return `t=${timestamp},${SCHEME}=${hmacHex(secret, timestamp, body)}`;
}

export interface VerifyWebhookOptions {
  /** The raw request body, exactly as received (a re-serialised JSON never matches). */
  body: string | Uint8Array;
  /** The `berth-signature` header's value. */
  header: string | string[] | undefined;
  /** The webhook's secret (the one given in `PUT /v1/webhooks/{clientId}`). */
  secret: string;
  /** Seconds either side of `now` a timestamp may lie; default 300. */
  toleranceSeconds?: number;
  /** The receiver's clock, in unix seconds; default now. */
  now?: number;
}

interface ParsedHeader {
  timestamp: number;
  signatures: string[];
}

function parseHeader(header: string | string[] | undefined): ParsedHeader {
  const value = Array.isArray(header) ? header.join(',') : header;
  if (value === undefined || value.trim() === '') {
    throw new WebhookSignatureError('malformed_header', `no ${SIGNATURE_HEADER} header`);
  }
  let timestamp: number | undefined;
  const signatures: string[] = [];
  for (const part of value.split(',')) {
    const separator = part.indexOf('=');
    if (separator < 0) continue;
    const key = part.slice(0, separator).trim();
    const item = part.slice(separator + 1).trim();
    if (key === 't' && /^\d{1,15}$/.test(item)) timestamp = Number(item);
    // Several v1 entries are accepted (as Stripe does), so a receiver keeps working while a
    // sender signs with an old and a new secret during a rotation.
    if (key === SCHEME && /^[0-9a-f]{64}$/.test(item)) signatures.push(item);
  }
  if (timestamp === undefined) {
    throw new WebhookSignatureError(
      'malformed_header',
      `${SIGNATURE_HEADER} has no t=<unix seconds>`,
    );
  }
  if (signatures.length === 0) {
    throw new WebhookSignatureError(
      'malformed_header',
      `${SIGNATURE_HEADER} has no ${SCHEME}=<hex>`,
    );
  }
  return { timestamp, signatures };
}

/**
 * Checks a delivery; returns its timestamp (unix seconds) or throws `WebhookSignatureError`.
 * The comparison is constant-time (`crypto.timingSafeEqual` on equal-length digests).
 */
export function verifyWebhook(options: VerifyWebhookOptions): number {
  const tolerance = options.toleranceSeconds ?? DEFAULT_TOLERANCE_SECONDS;
  const now = options.now ?? Math.floor(Date.now() / 1000);
  const { timestamp, signatures } = parseHeader(options.header);
  if (Math.abs(now - timestamp) > tolerance) {
    throw new WebhookSignatureError(
      'timestamp_out_of_tolerance',
      `signed at ${timestamp}, ${now - timestamp} s from now; the tolerance is ${tolerance} s`,
    );
  }
  const expected = Buffer.from(hmacHex(options.secret, timestamp, options.body), 'hex');
  // Every candidate is compared, whatever the first gave, so timing says nothing about which.
  let matched = false;
  for (const signature of signatures) {
    const given = Buffer.from(signature, 'hex');
    if (given.length === expected.length && timingSafeEqual(given, expected)) matched = true;
  }
  if (!matched) {
    throw new WebhookSignatureError(
      'signature_mismatch',
      'no signature matches the body and secret',
    );
  }
  return timestamp;
}

/** `verifyWebhook` as a yes/no, for receivers that only branch on it. */
export function isValidWebhook(options: VerifyWebhookOptions): boolean {
  try {
    verifyWebhook(options);
    return true;
  } catch (error) {
    if (error instanceof WebhookSignatureError) return false;
    throw error;
  }
}
