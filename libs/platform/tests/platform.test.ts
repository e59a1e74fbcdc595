import { jest } from '@jest/globals';
import { createVerifier } from 'fast-jwt';
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createMetrics, localAuthSecret, mintToken, writePrivateFile } from '../src/index.ts';

describe('local auth secret and tokens', () => {
  it('generates the secret once, keeps it private, and returns the same one after', () => {
    const dir = mkdtempSync(join(tmpdir(), 'berth-secret-'));
    const first = localAuthSecret(dir, undefined);
    const second = localAuthSecret(dir, undefined);
    expect(first).toMatch(/^[0-9a-f]{64}$/);
    expect(second).toBe(first);
    expect(statSync(join(dir, 'auth-secret')).mode & 0o777).toBe(0o600);
    expect(readFileSync(join(dir, 'auth-secret'), 'utf8').trim()).toBe(first);
  });

  it('makes an existing secret file with loose modes private again, keeping its secret', () => {
    const dir = mkdtempSync(join(tmpdir(), 'berth-secret-'));
    writeFileSync(join(dir, 'auth-secret'), 'an-older-secret\n', { mode: 0o644 });

    const secret = localAuthSecret(dir, undefined);

    expect(secret).toBe('an-older-secret');
    expect(statSync(join(dir, 'auth-secret')).mode & 0o777).toBe(0o600);
  });

  it('writes a private file (mode 600) whether or not it existed with loose modes', () => {
    const dir = mkdtempSync(join(tmpdir(), 'berth-token-'));
    const file = join(dir, 'admin-token');
    writeFileSync(file, 'old\n', { mode: 0o644 });

    writePrivateFile(file, 'new\n');

    expect(readFileSync(file, 'utf8')).toBe('new\n');
    expect(statSync(file).mode & 0o777).toBe(0o600);
  });

  it('prefers BERTH_AUTH_SECRET and refuses to invent one when asked not to', () => {
    const dir = mkdtempSync(join(tmpdir(), 'berth-secret-'));
    expect(localAuthSecret(dir, 'from-the-environment')).toBe('from-the-environment');
    expect(() => localAuthSecret(dir, undefined, false)).toThrow(/BERTH_AUTH_SECRET/);
  });

  it('mints an HS256 token with the given claims that the same secret verifies', () => {
    const secret = 'a-secret-long-enough-for-hs256-0123456789';
    const token = mintToken(secret, { client: 'acme', sub: 'ann', role: 'user' }, 60_000);
    const claims = createVerifier({ key: secret, algorithms: ['HS256'] })(token) as Record<
      string,
      unknown
    >;
    expect(claims).toMatchObject({ client: 'acme', sub: 'ann', role: 'user' });
    expect(JSON.parse(Buffer.from(token.split('.')[0]!, 'base64url').toString())).toMatchObject({
      alg: 'HS256',
    });
  });
});

describe('metrics', () => {
  it('counts core outcomes in Prometheus text', async () => {
    const metrics = createMetrics('test', { emf: false });
    metrics.core.containerStarted('created');
    metrics.core.containerStopped('idle:after 20m', 42);
    const text = await metrics.registry.metrics();
    expect(text).toContain('berth_container_starts_total{outcome="created",service="test"} 1');
    expect(text).toContain('berth_container_stops_total{reason="idle",service="test"} 1');
  });

  it('writes many values of one metric 100 to a line, and nothing for none', () => {
    const write = jest.spyOn(process.stdout, 'write').mockImplementation(() => true);
    try {
      const metrics = createMetrics('test', { emf: true });
      metrics.emf('SessionsPerContainer', []);
      expect(write).not.toHaveBeenCalled();
      metrics.emf(
        'SessionsPerContainer',
        Array.from({ length: 250 }, (_, i) => i % 11),
      );
      const lines = write.mock.calls.map(
        (call) =>
          JSON.parse(String(call[0])) as {
            SessionsPerContainer: number[];
            _aws: { CloudWatchMetrics: unknown[] };
          },
      );
      expect(lines.map((line) => line.SessionsPerContainer.length)).toEqual([100, 100, 50]);
      expect(lines.flatMap((line) => line.SessionsPerContainer)).toEqual(
        Array.from({ length: 250 }, (_, i) => i % 11),
      );
      expect(lines[0]?._aws.CloudWatchMetrics[0]).toEqual({
        Namespace: 'Berth',
        Dimensions: [[]],
        Metrics: [{ Name: 'SessionsPerContainer', Unit: 'Count' }],
      });
    } finally {
      write.mockRestore();
    }
  });

  it('writes CloudWatch embedded-metric lines when EMF is on', () => {
    const write = jest.spyOn(process.stdout, 'write').mockImplementation(() => true);
    try {
      createMetrics('test', { emf: true }).core.idleStop(12);
      const line = JSON.parse(String(write.mock.calls[0]?.[0]));
      expect(line).toMatchObject({
        IdleSecondsBeforeStop: 12,
        _aws: {
          CloudWatchMetrics: [
            { Namespace: 'Berth', Metrics: [{ Name: 'IdleSecondsBeforeStop', Unit: 'Seconds' }] },
          ],
        },
      });
    } finally {
      write.mockRestore();
    }
  });
});
