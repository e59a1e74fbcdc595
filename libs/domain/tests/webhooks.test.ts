import fc from 'fast-check';
import {
  InvalidArgumentError,
  loadConfig,
  matchesEventPatterns,
  parseWebhookInput,
  parseWebhookUrl,
  refusedAddressReason,
  webhookRetryDelayMs,
  webhookStreamOf,
  WEBHOOK_RETRY_CAP_MS,
  type WebhookNetworkPolicy,
} from '../src/index.ts';

const strict: WebhookNetworkPolicy = { allowHttp: false, allowedNetworks: [] };
const local: WebhookNetworkPolicy = {
  allowHttp: true,
  allowedNetworks: ['127.0.0.1/32', '::1/128'],
};

function fieldOf(run: () => unknown): string | undefined {
  try {
    run();
    return undefined;
  } catch (error) {
    if (error instanceof InvalidArgumentError) return error.field;
    throw error;
  }
}

describe('webhook addresses (SSRF)', () => {
  it.each([
    '169.254.169.254',
    'fd00:ec2::254',
    '169.254.170.2',
    '10.1.2.3',
    '172.16.0.1',
    '172.31.255.255',
    '192.168.1.1',
    '127.0.0.1',
    '127.8.9.10',
    '::1',
    'fc00::1',
    'fd12:3456::1',
    'fe80::1',
    '0.0.0.0',
    '::',
    '100.64.0.1',
    '224.0.0.1',
    '255.255.255.255',
    '::ffff:10.0.0.1',
    '::ffff:127.0.0.1',
    '::ffff:169.254.169.254',
  ])('refuses %s by default', (address) => {
    expect(refusedAddressReason(address, strict)).toEqual(expect.any(String));
  });

  it.each(['93.184.215.14', '8.8.8.8', '2606:4700::6810:85e5', '172.32.0.1', '11.0.0.1'])(
    'allows the public address %s',
    (address) => {
      expect(refusedAddressReason(address, strict)).toBeNull();
    },
  );

  it('lifts the refusal for a network the deployment allows, never for the metadata endpoints', () => {
    // Arrange
    const policy: WebhookNetworkPolicy = {
      allowHttp: true,
      allowedNetworks: ['127.0.0.1/32', '169.254.0.0/16', 'fd00::/8'],
    };

    // Assess
    expect(refusedAddressReason('127.0.0.1', policy)).toBeNull();
    expect(refusedAddressReason('127.0.0.2', policy)).toEqual(expect.any(String));
    expect(refusedAddressReason('169.254.1.1', policy)).toBeNull();
    expect(refusedAddressReason('169.254.169.254', policy)).toMatch(/metadata/);
    expect(refusedAddressReason('fd00:ec2::254', policy)).toMatch(/metadata/);
  });

  it('refuses every private IPv4 address, in any spelling the URL parser accepts', () => {
    fc.assert(
      fc.property(
        fc.constantFrom<[number, number]>([10, 8], [192 * 256 + 168, 16], [127, 8]),
        fc.nat(),
        ([prefix, bits], rest) => {
          const shift = bits === 8 ? 24 : 16;
          const value = ((prefix << shift) >>> 0) + (rest % 2 ** shift);
          // WHATWG URL reads a decimal host as an IPv4 address: http://167772161/ is 10.0.0.1.
          expect(fieldOf(() => parseWebhookUrl(`https://${value}/hook`, strict))).toBe('url');
        },
      ),
    );
  });
});

describe('webhook URLs', () => {
  it.each([
    ['http://example.com/hook', strict, /https/],
    ['ftp://example.com/hook', local, /https or http/],
    ['https://user:pw@example.com/hook', strict, /credentials/],
    ['https://example.com/hook#x', strict, /fragment/],
    ['not a url', strict, /absolute URL/],
    ['https://[::1]/hook', strict, /loopback/],
    ['https://localhost/hook', strict, /loopback/],
    ['https://169.254.169.254/latest/meta-data', local, /metadata/],
    ['http://10.0.0.1/hook', local, /private/],
  ])('refuses %s, naming the field url', (url, policy, message) => {
    // Act
    const run = () => parseWebhookUrl(url, policy);

    // Assess
    expect(run).toThrow(message);
    expect(fieldOf(run)).toBe('url');
  });

  it('allows https to a public name and, locally, http to 127.0.0.1', () => {
    expect(parseWebhookUrl('https://hooks.example.com/berth?x=1', strict).hostname).toBe(
      'hooks.example.com',
    );
    expect(parseWebhookUrl('http://127.0.0.1:9000/hook', local).port).toBe('9000');
  });

  it('names the event pattern at fault, and keeps each pattern once', () => {
    // Act
    const bad = () =>
      parseWebhookInput(
        { url: 'https://a.example', events: ['container.*', 'containers.*'], secret: 's'.repeat(16) },
        strict,
      );
    const good = parseWebhookInput(
      {
        url: 'https://a.example',
        events: ['container.*', 'session.released', 'container.*'],
        secret: 's'.repeat(16),
      },
      strict,
    );

    // Assess
    expect(fieldOf(bad)).toBe('events[1]');
    expect(good.events).toEqual(['container.*', 'session.released']);
  });

  it('refuses a secret with surrounding whitespace or a line break', () => {
    expect(
      fieldOf(() =>
        parseWebhookInput(
          { url: 'https://a.example', events: ['*'], secret: 'abcdefghijklmnop\n' },
          strict,
        ),
      ),
    ).toBe('secret');
  });
});

describe('webhook events and retries', () => {
  it('matches exact types, families and everything', () => {
    expect(matchesEventPatterns(['container.*'], 'container.stopped')).toBe(true);
    expect(matchesEventPatterns(['container.*'], 'session.released')).toBe(false);
    expect(matchesEventPatterns(['session.released'], 'session.released')).toBe(true);
    expect(matchesEventPatterns(['session.released'], 'session.ready')).toBe(false);
    expect(matchesEventPatterns(['*'], 'command.rejected')).toBe(true);
  });

  it('orders a container event by its containerId and names the client', () => {
    expect(
      webhookStreamOf({
        type: 'container.stopped',
        eventId: 'e',
        occurredAt: '2026-12-01T00:00:00.000Z',
        containerId: 'acme.web.john',
        payload: {},
      }),
    ).toEqual({ containerId: 'acme.web.john', clientId: 'acme' });
    expect(
      webhookStreamOf({
        type: 'command.rejected',
        eventId: 'e',
        occurredAt: '2026-12-01T00:00:00.000Z',
        payload: {},
      }),
    ).toBeNull();
  });

  it('backs off exponentially within [half, all] of base·2^(n-1), capped at an hour', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 40 }),
        fc.integer({ min: 1, max: 60_000 }),
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        (attempt, base, random) => {
          const full = Math.min(base * 2 ** (attempt - 1), WEBHOOK_RETRY_CAP_MS);
          const delay = webhookRetryDelayMs(attempt, base, random);
          expect(delay).toBeGreaterThanOrEqual(Math.floor(full / 2));
          expect(delay).toBeLessThanOrEqual(Math.ceil(full));
        },
      ),
    );
  });

  it('reads the webhook variables, naming a bad network', () => {
    // Act
    const config = loadConfig({
      BERTH_WEBHOOK_ALLOW_HTTP: 'true',
      BERTH_WEBHOOK_ALLOWED_NETWORKS: '127.0.0.1/32, ::1/128',
      BERTH_WEBHOOK_RETRY_WINDOW: '1h',
    });
    const bad = () => loadConfig({ BERTH_WEBHOOK_ALLOWED_NETWORKS: '127.0.0.1/33' });

    // Assess
    expect(config.webhooks).toMatchObject({
      table: 'berth-webhooks',
      network: { allowHttp: true, allowedNetworks: ['127.0.0.1/32', '::1/128'] },
      timeoutMs: 10_000,
      retryBaseMs: 10_000,
      retryWindowMs: 3_600_000,
      concurrencyPerClient: 4,
    });
    expect(bad).toThrow(/BERTH_WEBHOOK_ALLOWED_NETWORKS/);
    expect(loadConfig({}).webhooks.network).toEqual({ allowHttp: false, allowedNetworks: [] });
  });
});
