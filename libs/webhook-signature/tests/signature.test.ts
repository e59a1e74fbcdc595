import fc from 'fast-check';
import {
  DEFAULT_TOLERANCE_SECONDS,
  WebhookSignatureError,
  isValidWebhook,
  signWebhook,
  verifyWebhook,
} from '../src/index.ts';

const secret = fc.string({ minLength: 16, maxLength: 64 });
const body = fc.string({ maxLength: 500 });
const unix = fc.integer({ min: 1_000_000_000, max: 4_000_000_000 });

function reasonOf(run: () => unknown): string | undefined {
  try {
    run();
    return undefined;
  } catch (error) {
    if (error instanceof WebhookSignatureError) return error.reason;
    throw error;
  }
}

describe('webhook signatures', () => {
  it('matches the Stripe scheme: t=<unix>,v1=<hex HMAC-SHA256 of "t.body">', () => {
    // Arrange: a vector computed independently with `openssl dgst -sha256 -hmac`.
    // printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac whsec_test_secret_1234
    const header = signWebhook('whsec_test_secret_1234', '{"a":1}', 1_700_000_000);

    // Assess
    expect(header).toBe(
      't=1700000000,v1=09b3dbd0d037bc391fb094acc8a79acc8199cdce9440582d74d96e9f4688d5e6',
    );
  });

  it('accepts what it signed, within the tolerance either side', () => {
    fc.assert(
      fc.property(
        secret,
        body,
        unix,
        fc.integer({ min: -DEFAULT_TOLERANCE_SECONDS, max: DEFAULT_TOLERANCE_SECONDS }),
        (key, text, t, skew) => {
          const header = signWebhook(key, text, t);
          expect(verifyWebhook({ body: text, header, secret: key, now: t + skew })).toBe(t);
        },
      ),
    );
  });

  it('refuses a tampered body', () => {
    fc.assert(
      fc.property(secret, body, body, unix, (key, text, other, t) => {
        fc.pre(text !== other);
        const header = signWebhook(key, text, t);
        expect(reasonOf(() => verifyWebhook({ body: other, header, secret: key, now: t }))).toBe(
          'signature_mismatch',
        );
      }),
    );
  });

  it('refuses a tampered timestamp (the signature covers it)', () => {
    fc.assert(
      fc.property(secret, body, unix, fc.integer({ min: 1, max: 300 }), (key, text, t, shift) => {
        const header = signWebhook(key, text, t).replace(`t=${t}`, `t=${t + shift}`);
        expect(
          reasonOf(() => verifyWebhook({ body: text, header, secret: key, now: t + shift })),
        ).toBe('signature_mismatch');
      }),
    );
  });

  it('refuses another secret', () => {
    fc.assert(
      fc.property(secret, secret, body, unix, (key, other, text, t) => {
        fc.pre(key !== other);
        const header = signWebhook(key, text, t);
        expect(isValidWebhook({ body: text, header, secret: other, now: t })).toBe(false);
      }),
    );
  });

  it('refuses a timestamp outside the tolerance, even with a good signature', () => {
    fc.assert(
      fc.property(
        secret,
        body,
        unix,
        fc.integer({ min: 1, max: 100_000 }),
        fc.boolean(),
        fc.integer({ min: 1, max: 600 }),
        (key, text, t, beyond, late, tolerance) => {
          const header = signWebhook(key, text, t);
          const now = late ? t + tolerance + beyond : t - tolerance - beyond;
          expect(
            reasonOf(() =>
              verifyWebhook({ body: text, header, secret: key, now, toleranceSeconds: tolerance }),
            ),
          ).toBe('timestamp_out_of_tolerance');
        },
      ),
    );
  });

  it('refuses one changed hex digit of the signature', () => {
    fc.assert(
      fc.property(secret, body, unix, fc.nat({ max: 63 }), (key, text, t, position) => {
        const header = signWebhook(key, text, t);
        const digest = header.split('v1=')[1] ?? '';
        const digit = digest[position] === '0' ? '1' : '0';
        const forged = `t=${t},v1=${digest.slice(0, position)}${digit}${digest.slice(position + 1)}`;
        expect(
          reasonOf(() => verifyWebhook({ body: text, header: forged, secret: key, now: t })),
        ).toBe('signature_mismatch');
      }),
    );
  });

  it('accepts a header with a second v1 (a sender rotating its secret)', () => {
    // Arrange
    const t = 1_800_000_000;
    const old = signWebhook('old-secret-0123456789', 'x', t).split(',')[1];
    const current = signWebhook('new-secret-0123456789', 'x', t);

    // Act
    const ok = isValidWebhook({
      body: 'x',
      header: `${current},${old}`,
      secret: 'old-secret-0123456789',
      now: t,
    });

    // Assess
    expect(ok).toBe(true);
  });

  it.each([
    [undefined, 'malformed_header'],
    ['', 'malformed_header'],
    ['v1=' + 'a'.repeat(64), 'malformed_header'],
    ['t=1800000000', 'malformed_header'],
    ['t=1800000000,v1=zz', 'malformed_header'],
    ['t=soon,v1=' + 'a'.repeat(64), 'malformed_header'],
  ])('refuses the malformed header %p (%s)', (header, reason) => {
    expect(
      reasonOf(() => verifyWebhook({ body: 'x', header, secret: 'a-secret-0123456789', now: 1 })),
    ).toBe(reason);
  });
});
