/**
 * The console's authentication over DynamoDB Local, through a listening server (the event
 * stream is read over real HTTP): no token leads to the login form, a bad or non-admin token
 * is refused and never becomes a cookie, the admin's cookie is HttpOnly, SameSite=Strict and
 * scoped to /console, the event stream refuses a request without it, and a stop needs the
 * console's own header (CSRF). The browser end to end is tools/tests/e2e-console.test.ts.
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { UseCases } from '@berth/core';
import { systemClock, type BerthEvent } from '@berth/domain';
import { DynamoStateStore, ensureTables } from '@berth/dynamodb';
import { makeCoreDeps, type FakeCoreDeps } from '@berth/testing';
import type { FastifyInstance } from 'fastify';
import { createSigner } from 'fast-jwt';
import { randomUUID } from 'node:crypto';
import { Registry } from 'prom-client';
import { buildDiscoveryApp } from '../src/app.ts';
import { LifecycleFeed } from '../src/console/feed.ts';
import { formatCountdown, html, logUrlOf, webhookSection } from '../src/console/views.ts';

const SECRET = 'a-console-secret-that-is-long-enough-for-hs256!!';
const sign = (claims: Record<string, unknown>, key = SECRET) =>
  createSigner({ key, algorithm: 'HS256', expiresIn: 3_600_000 })(claims);

const admin = sign({ client: 'ops', sub: 'root', role: 'admin' });
const acmeService = sign({ client: 'acme', sub: 'svc', role: 'service' });
const forged = sign(
  { client: 'ops', sub: 'root', role: 'admin' },
  'another-secret-that-is-long-enough-too!!',
);

const dynamodb = new DynamoDBClient({});
const suffix = randomUUID().slice(0, 8);
const names = {
  containerTable: `console-containers-${suffix}`,
  sessionTable: `console-sessions-${suffix}`,
};
let app: FastifyInstance;
let base: string;
let feed: LifecycleFeed;
let useCases: UseCases;

/** A form post, as the login page's form sends it. */
const login = (token: string) =>
  fetch(`${base}/console/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ token }).toString(),
    redirect: 'manual',
  });

/** The `name=value` part of the console cookie a login answer set. */
async function cookieOf(token: string): Promise<string> {
  const answer = await login(token);
  expect(answer.status).toBe(303);
  const setCookie = answer.headers.get('set-cookie') ?? '';
  return setCookie.split(';')[0] ?? '';
}

/** Reads an event stream until `until` matches the text so far (bounded by the test timeout). */
async function readStream(response: Response, until: (text: string) => boolean): Promise<string> {
  const reader = response.body!.getReader();
  const decoder = new TextDecoder();
  let text = '';
  while (!until(text)) {
    const { value, done } = await reader.read();
    if (done) break;
    text += decoder.decode(value, { stream: true });
  }
  await reader.cancel();
  return text;
}

beforeAll(async () => {
  await ensureTables(dynamodb, names);
  const store = new DynamoStateStore({ client: dynamodb, ...names });
  const deps = makeCoreDeps({ store, clock: systemClock as FakeCoreDeps['clock'] });
  useCases = new UseCases(deps);
  await useCases.sessions.assign({
    type: 'session.assign',
    commandId: 'c-console-1',
    payload: { sessionId: 's-console-1', clientId: 'acme', projectId: 'web', userId: 'john' },
  });
  feed = new LifecycleFeed();
  app = await buildDiscoveryApp({
    useCases,
    store,
    publisher: deps.publisher,
    authSecret: SECRET,
    cacheTtlMs: 0,
    rateLimitPerMinute: 0,
    registry: new Registry(),
    feed,
  });
  base = await app.listen({ host: '127.0.0.1', port: 0 });
});

afterAll(async () => {
  await app?.close();
  dynamodb.destroy();
});

describe('console sign-in', () => {
  it('sends a visitor without a token to the login form', async () => {
    const page = await fetch(`${base}/console`, { redirect: 'manual' });
    expect(page.status).toBe(303);
    expect(page.headers.get('location')).toBe('/console/login');

    const form = await fetch(`${base}/console/login`);
    expect(form.status).toBe(200);
    const text = await form.text();
    expect(text).toContain('<form method="post" action="/console/login">');
    expect(text).toContain('name="token"');
    expect(form.headers.get('content-security-policy')).toContain("script-src 'self'");
  });

  it.each([
    ['a token signed with another secret', forged, 401, 'invalid or expired'],
    ['text that is no token', 'not-a-jwt', 401, 'invalid or expired'],
    ['a service token', acmeService, 403, 'needs an admin token'],
    ['nothing', '', 400, 'Paste a token'],
  ])('refuses %s without setting a cookie', async (_what, token, status, message) => {
    const answer = await login(token);
    expect(answer.status).toBe(status);
    expect(answer.headers.get('set-cookie')).toBeNull();
    expect(await answer.text()).toContain(message);
  });

  it('keeps an admin token in an HttpOnly, SameSite=Strict cookie of /console, never in a URL', async () => {
    const answer = await login(admin);
    expect(answer.status).toBe(303);
    expect(answer.headers.get('location')).toBe('/console');
    const setCookie = answer.headers.get('set-cookie') ?? '';
    expect(setCookie).toMatch(/^berth_console=/);
    expect(setCookie).toContain('HttpOnly');
    expect(setCookie).toContain('SameSite=Strict');
    expect(setCookie).toContain('Path=/console');
    expect(setCookie).toMatch(/Max-Age=\d+/);

    const page = await fetch(`${base}/console`, {
      headers: { cookie: setCookie.split(';')[0] ?? '' },
    });
    expect(page.status).toBe(200);
    const text = await page.text();
    expect(text).toContain('acme.web.john');
    expect(text).not.toContain(admin);
  });

  it('answers a live reload with the region only, and a reload without a valid cookie with a redirect to the login', async () => {
    const cookie = await cookieOf(admin);
    const region = await fetch(`${base}/console`, { headers: { cookie, 'hx-request': 'true' } });
    expect(region.status).toBe(200);
    const text = await region.text();
    expect(text).not.toContain('<html');
    expect(text).toContain('acme.web.john');

    const expired = await fetch(`${base}/console`, {
      headers: { cookie: `berth_console=${forged}`, 'hx-request': 'true' },
    });
    expect(expired.status).toBe(401);
    expect(expired.headers.get('hx-redirect')).toBe('/console/login');
  });

  it('does not let the console cookie stand in for the API bearer token', async () => {
    const cookie = await cookieOf(admin);
    const api = await fetch(`${base}/v1/containers`, { headers: { cookie } });
    expect(api.status).toBe(401);
  });

  it('refuses a stop that does not come from the console page (no HX-Request header)', async () => {
    const cookie = await cookieOf(admin);
    const stop = await fetch(`${base}/console/containers/acme.web.john/stop`, {
      method: 'POST',
      headers: { cookie, 'content-type': 'application/x-www-form-urlencoded' },
      body: 'generation=1',
    });
    expect(stop.status).toBe(403);
    const container = await useCases.containers.get('acme.web.john');
    expect(container.status).not.toBe('terminating');
  });
});

describe('console event stream', () => {
  it.each([
    ['no cookie', undefined],
    ['a cookie with a forged token', `berth_console=${forged}`],
    ['a cookie with a service token', `berth_console=${acmeService}`],
  ])('refuses %s with 401', async (_what, cookie) => {
    const answer = await fetch(`${base}/console/events`, {
      headers: { accept: 'text/event-stream', ...(cookie ? { cookie } : {}) },
    });
    expect(answer.status).toBe(401);
    expect(answer.headers.get('content-type')).toContain('application/json');
    expect(feed.listenerCount).toBe(0);
  });

  it('refuses the admin token as a bearer header or in the query: only the cookie opens it', async () => {
    const bearer = await fetch(`${base}/console/events`, {
      headers: { accept: 'text/event-stream', authorization: `Bearer ${admin}` },
    });
    expect(bearer.status).toBe(401);
    const query = await fetch(`${base}/console/events?token=${admin}`, {
      headers: { accept: 'text/event-stream' },
    });
    expect(query.status).toBe(401);
  });

  it("streams the lifecycle events the replica's queue receives to a signed-in admin", async () => {
    const cookie = await cookieOf(admin);
    const stream = await fetch(`${base}/console/events`, {
      headers: { accept: 'text/event-stream', cookie },
    });
    expect(stream.status).toBe(200);
    expect(stream.headers.get('content-type')).toContain('text/event-stream');
    const event: BerthEvent = {
      type: 'container.stopped',
      eventId: 'acme.web.john#1/container.stopped',
      occurredAt: new Date().toISOString(),
      containerId: 'acme.web.john',
      payload: { container: { containerId: 'acme.web.john', status: 'stopped', generation: 1 } },
    };
    // Published once the stream is subscribed (its `ready` event was written after that).
    const text = await readStream(stream, (sofar) => {
      if (sofar.includes('event: ready') && !sofar.includes('event: lifecycle')) {
        feed.publish(event);
      }
      return sofar.includes('"status":"stopped"');
    });
    expect(text).toContain('event: lifecycle');
    expect(text).toContain(`id: ${event.eventId}`);
    expect(text).toContain('"type":"container.stopped"');
    expect(text).toContain('"generation":1');
  });
});

describe('console event stream at shutdown', () => {
  it('ends open streams when the server closes, so a SIGTERM is not held up by a browser', async () => {
    const own = await buildDiscoveryApp({
      useCases,
      store: new DynamoStateStore({ client: dynamodb, ...names }),
      publisher: makeCoreDeps().publisher,
      authSecret: SECRET,
      cacheTtlMs: 0,
      registry: new Registry(),
      feed: new LifecycleFeed(),
    });
    const url = await own.listen({ host: '127.0.0.1', port: 0 });
    const signIn = await fetch(`${url}/console/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ token: admin }).toString(),
      redirect: 'manual',
    });
    const cookie = (signIn.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
    const stream = await fetch(`${url}/console/events`, {
      headers: { accept: 'text/event-stream', cookie },
    });
    const reader = stream.body!.getReader();
    const decoder = new TextDecoder();
    let text = '';
    while (!text.includes('event: ready')) {
      const { value } = await reader.read();
      text += decoder.decode(value, { stream: true });
    }

    await own.close();

    // The stream was ended by the server: reading reaches its end instead of waiting.
    for (;;) {
      const { done } = await reader.read();
      if (done) break;
    }
    expect(text).toContain('event: ready');
  });
});

describe('console views', () => {
  it('escapes whatever a route answered before it becomes markup', () => {
    const section = webhookSection({
      webhook: { url: 'https://example.com/"><script>alert(1)</script>', events: ['container.*'] },
      dead: [
        {
          eventId: 'e1',
          eventType: 'container.stopped',
          containerId: 'acme.web.john',
          occurredAt: '2026-12-01T00:00:00.000Z',
          status: 'dead',
          attempts: 9,
          createdAt: '2026-12-01T00:00:00.000Z',
          nextAttemptAt: null,
          lastAttemptAt: '2026-12-02T00:00:00.000Z',
          lastStatusCode: 500,
          lastError: '<img src=x onerror=alert(1)> & "quoted"',
          deliveredAt: null,
          deadAt: '2026-12-02T00:00:00.000Z',
        },
      ],
      recent: [],
    }).text;
    expect(section).not.toContain('<script>');
    expect(section).not.toContain('<img');
    expect(section).toContain('&lt;img src=x onerror=alert(1)&gt; &amp; &quot;quoted&quot;');
    expect(section).toContain('&quot;&gt;&lt;script&gt;');
    expect(html`<p>${'<script>'}</p>`.text).toBe('<p>&lt;script&gt;</p>');
  });

  it("links a generation's logs from the deployment's template, each value encoded", () => {
    const container = {
      containerId: 'acme.web.john',
      generation: 3,
      taskArn: 'arn:aws:ecs:eu-west-1:123456789012:task/berth/0123abcd',
    };
    expect(
      logUrlOf(
        'https://logs.example/{region}/x$252F{taskId}?c={containerId}&g={generation}',
        container,
      ),
    ).toBe('https://logs.example/eu-west-1/x$252F0123abcd?c=acme.web.john&g=3');
    expect(logUrlOf(undefined, container)).toBeNull();
    expect(logUrlOf('https://logs.example/{taskId}', { ...container, taskArn: null })).toBeNull();
  });

  it('counts down in one fixed-width format', () => {
    expect(formatCountdown(0)).toBe('00:00:00');
    expect(formatCountdown(59)).toBe('00:00:59');
    expect(formatCountdown(3_600 + 61)).toBe('01:01:01');
    expect(formatCountdown(2 * 86_400 + 5)).toBe('2d 00:00:05');
  });
});
