/**
 * What makes a cached discover cheap, checked for what it must not change: a verified token
 * is remembered only while it is valid and only for exactly that token, and a cached
 * container's answer is serialized once per cached record.
 */
import { jest } from '@jest/globals';
import { UnauthenticatedError, newContainerRecord, type ContainerRecord } from '@berth/domain';
import { createSigner } from 'fast-jwt';
import { createTokenVerifier } from '../src/auth.ts';
import { ContainerCache } from '../src/cache.ts';

const SECRET = 'a-hot-path-secret-that-is-long-enough-for-hs256!';
const KEY = { clientId: 'acme', projectId: 'web', userId: 'ann', containerId: 'acme.web.ann' };

function running(version: number): ContainerRecord {
  return {
    ...newContainerRecord(KEY, 1, '2026-01-01T00:00:00.000Z'),
    status: 'running',
    version,
  };
}

describe('createTokenVerifier', () => {
  afterEach(() => {
    jest.useRealTimers();
  });

  it('answers the same principal for a token verified before, and refuses it once it has expired', () => {
    // Prepare
    jest.useFakeTimers({ now: new Date('2026-01-01T00:00:00Z'), doNotFake: ['nextTick'] });
    const verify = createTokenVerifier(SECRET);
    const token = createSigner({ key: SECRET, algorithm: 'HS256', expiresIn: 60_000 })({
      client: 'acme',
      sub: 'ann',
      role: 'user',
    });
    const principal = { clientId: 'acme', userId: 'ann', role: 'user' };

    // Act
    const first = verify(token);
    const again = verify(token);
    jest.setSystemTime(new Date('2026-01-01T00:01:01Z'));

    // Assess
    expect(first).toEqual(principal);
    expect(again).toEqual(principal);
    expect(() => verify(token)).toThrow(UnauthenticatedError);
  });

  it('never lets a cached signature vouch for another header or payload', () => {
    // Prepare
    const verify = createTokenVerifier(SECRET);
    const token = createSigner({ key: SECRET, algorithm: 'HS256' })({
      client: 'acme',
      sub: 'ann',
      role: 'user',
    });
    verify(token);
    const [header, , signature] = token.split('.');
    const payload = Buffer.from(
      JSON.stringify({ client: 'acme', sub: 'ann', role: 'admin' }),
    ).toString('base64url');

    // Act
    const forged = () => verify(`${header}.${payload}.${signature}`);

    // Assess
    expect(forged).toThrow(UnauthenticatedError);
    expect(verify(token)).toEqual({ clientId: 'acme', userId: 'ann', role: 'user' });
  });

  it('refuses a token signed with another secret, also after a valid one was cached', () => {
    // Prepare
    const verify = createTokenVerifier(SECRET);
    const claims = { client: 'acme', sub: 'ann', role: 'user' };
    verify(createSigner({ key: SECRET, algorithm: 'HS256' })(claims));
    const other = createSigner({ key: `${SECRET}-other`, algorithm: 'HS256' })(claims);

    // Act
    const attempt = () => verify(other);

    // Assess
    expect(attempt).toThrow(UnauthenticatedError);
  });
});

describe('ContainerCache.answer', () => {
  it('serializes a cached record once, and again only when another record replaces it', () => {
    // Prepare
    const cache = new ContainerCache({ ttlMs: 60_000 });
    const serialize = jest.fn((container: ContainerRecord) => JSON.stringify(container));
    cache.put(running(1));

    // Act
    const first = cache.answer(KEY.containerId, serialize);
    const second = cache.answer(KEY.containerId, serialize);
    cache.put(running(2));
    const third = cache.answer(KEY.containerId, serialize);

    // Assess
    expect(serialize).toHaveBeenCalledTimes(2);
    expect(second).toBe(first);
    expect(JSON.parse(first ?? '')).toMatchObject({ version: 1 });
    expect(JSON.parse(third ?? '')).toMatchObject({ version: 2 });
  });

  it('has no answer for a container it dropped or whose entry expired', () => {
    // Prepare
    let now = 0;
    const cache = new ContainerCache({ ttlMs: 1_000, now: () => now });
    const serialize = (container: ContainerRecord) => JSON.stringify(container);
    cache.put(running(1));
    cache.answer(KEY.containerId, serialize);

    // Act
    now = 1_000;
    const expired = cache.answer(KEY.containerId, serialize);
    cache.put(running(2));
    cache.invalidate(KEY.containerId);
    const dropped = cache.answer(KEY.containerId, serialize);

    // Assess
    expect(expired).toBeUndefined();
    expect(dropped).toBeUndefined();
  });
});
