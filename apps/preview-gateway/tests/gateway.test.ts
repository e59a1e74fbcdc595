import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { UseCases } from '@berth/core';
import {
  containerIdOf,
  stopReason,
  systemClock,
  type ContainerKey,
  type ContainerRecord,
} from '@berth/domain';
import { DynamoStateStore, ensureTables } from '@berth/dynamodb';
import {
  PREVIEW_COOKIE_AUDIENCE,
  PREVIEW_URL_AUDIENCE,
  mintPreviewToken,
  mintToken,
} from '@berth/platform';
import { makeCoreDeps, type FakeCoreDeps } from '@berth/testing';
import type { FastifyInstance } from 'fastify';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import {
  createServer,
  request as httpRequest,
  type IncomingHttpHeaders,
  type Server,
} from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { WebSocket, WebSocketServer } from 'ws';
import { buildGatewayApp } from '../src/app.ts';

const SECRET = 'a-test-secret-that-is-long-enough-for-hs256!';
const DOMAIN = 'preview.test';
const JOHN: ContainerKey = { clientId: 'acme', projectId: 'site', userId: 'john' };
const MARY: ContainerKey = { clientId: 'acme', projectId: 'site', userId: 'mary' };
const JOHN_ID = containerIdOf(JOHN);
const MARY_ID = containerIdOf(MARY);
const PAGE = 'hello from the dev server';

const dynamodb = new DynamoDBClient({});
const suffix = randomUUID().slice(0, 8);
const names = {
  containerTable: `gateway-containers-${suffix}`,
  sessionTable: `gateway-sessions-${suffix}`,
};

let deps: FakeCoreDeps<DynamoStateStore>;
let useCases: UseCases;
let gateway: FastifyInstance;
let gatewayUrl: string;
let devServer: Server;
/** What the dev server last saw of a request, to check what the gateway passes on. */
let lastSeenHeaders: IncomingHttpHeaders = {};

/** How often the dev server pushes an update over a `/push` socket (a hot-reload stream). */
const PUSH_EVERY_MS = 50;

/**
 * A tiny dev server: a page, a redirect, a header echo, a WebSocket echo, and on `/push` a
 * socket the dev server keeps pushing updates over, as a hot-reload server does.
 */
async function startDevServer(): Promise<Server> {
  const server = createServer((request, response) => {
    lastSeenHeaders = request.headers;
    if (request.url === '/index.html' || request.url === '/') {
      response.writeHead(200, { 'content-type': 'text/html' }).end(PAGE);
    } else if (request.url === '/moved') {
      response.writeHead(302, { location: '/index.html' }).end();
    } else {
      response.writeHead(404).end('not found');
    }
  });
  const sockets = new WebSocketServer({ server });
  sockets.on('connection', (socket, request) => {
    socket.on('message', (data: Buffer) => socket.send(`echo:${data.toString()}`));
    if (request.url === '/push') {
      let update = 0;
      const pushing = setInterval(() => socket.send(`update:${(update += 1)}`), PUSH_EVERY_MS);
      socket.on('close', () => clearInterval(pushing));
    }
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return server;
}

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/** A raw GET (no normalisation of the path, any Host header), as a hostile client sends it. */
function get(path: string, headers: Record<string, string> = {}): Promise<Answer> {
  const { hostname, port } = new URL(gatewayUrl);
  return new Promise((resolve, reject) => {
    const req = httpRequest({ hostname, port, path, method: 'GET', headers }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (body += chunk));
      response.on('end', () =>
        resolve({ status: response.statusCode ?? 0, headers: response.headers, body }),
      );
    });
    req.on('error', reject);
    req.end();
  });
}

const urlToken = (containerId: string, now = new Date()) =>
  mintPreviewToken(SECRET, containerId, PREVIEW_URL_AUDIENCE, 60_000, now).token;
const cookieFor = (containerId: string) =>
  `berth_preview=${mintPreviewToken(SECRET, containerId, PREVIEW_COOKIE_AUDIENCE, 60_000).token}`;

/** A running container whose task's address is this machine, as the local runtime reports it. */
async function runningContainer(key: ContainerKey): Promise<ContainerRecord> {
  const { container } = await useCases.containers.findOrStart(key);
  if (!container.taskArn) throw new Error('no task');
  await useCases.taskEvents.handle(
    deps.runtime.change(container.taskArn, { lastStatus: 'RUNNING' }),
  );
  await useCases.records.update(container.containerId, (current) => ({
    ...current,
    endpoint: '127.0.0.1',
  }));
  // The agent's report that its dev server answers (issue 19 item 1).
  await useCases.devServers.record({
    type: 'devserver.state',
    commandId: `devserver-${randomUUID()}`,
    payload: {
      containerId: container.containerId,
      generation: container.generation,
      state: 'up',
      port: (devServer.address() as AddressInfo).port,
      restarts: 0,
      since: new Date().toISOString(),
      sequence: 1,
    },
  });
  const record = await deps.store.getContainer(container.containerId);
  if (record?.status !== 'running') throw new Error('not running');
  return record;
}

/** A container's idle timeout of its own policy: its preview touches come every half of it. */
const SHORT_IDLE_TIMEOUT_MS = 1_000;
const SHORT_TOUCH_INTERVAL_MS = SHORT_IDLE_TIMEOUT_MS / 2;

/** A running container whose policy's idle timeout is short, so preview touches come often. */
async function runningWithShortIdleTimeout(key: ContainerKey): Promise<string> {
  const { containerId } = await runningContainer(key);
  await useCases.records.update(containerId, (current) => ({
    ...current,
    policy: {
      idleTimeoutMs: SHORT_IDLE_TIMEOUT_MS,
      idleTimeoutSince: null,
      maxLifetimeMs: null,
      maxSessions: 10,
      expiryNoticeMs: 60_000,
    },
  }));
  return containerId;
}

/** A WebSocket through the gateway to the container's dev server, once open. */
async function openSocket(containerId: string, path: string): Promise<WebSocket> {
  const url = `${gatewayUrl.replace('http:', 'ws:')}/p/${containerId}${path}`;
  const socket = new WebSocket(url, { headers: { cookie: cookieFor(containerId) } });
  await once(socket, 'open');
  return socket;
}

/** `at` plus `ms`, as an ISO timestamp (record timestamps compare as strings). */
const isoAfter = (at: string | undefined, ms: number) =>
  new Date(Date.parse(at ?? '') + ms).toISOString();

async function stopContainer(containerId: string): Promise<void> {
  const record = await useCases.containers.stop(containerId, stopReason('manual'));
  if (!record.taskArn) throw new Error('no task');
  await useCases.taskEvents.handle(
    deps.runtime.change(record.taskArn, { lastStatus: 'STOPPED', exitCode: 0 }),
  );
}

/** Polls the store until `check` holds, for at most `timeoutMs`. */
async function eventually(
  containerId: string,
  check: (record: ContainerRecord | undefined) => boolean,
  timeoutMs = 5_000,
): Promise<ContainerRecord | undefined> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const record = await deps.store.getContainer(containerId);
    if (check(record) || Date.now() > deadline) return record;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

beforeAll(async () => {
  await ensureTables(dynamodb, names);
  devServer = await startDevServer();
  const store = new DynamoStateStore({ client: dynamodb, ...names });
  deps = makeCoreDeps({ store, clock: systemClock as FakeCoreDeps['clock'] });
  useCases = new UseCases(deps);
  gateway = await buildGatewayApp({
    preview: useCases.preview,
    store,
    authSecret: SECRET,
    domain: DOMAIN,
    cookieTtlMs: 3_600_000,
    secureCookies: false,
    cacheTtlMs: 0,
    idleTimeoutMs: 20 * 60_000,
    holdMs: 300,
    pollMs: 50,
    registry: new Registry(),
  });
  gatewayUrl = await gateway.listen({ host: '127.0.0.1', port: 0 });
  await runningContainer(JOHN);
  await runningContainer(MARY);
});

afterAll(async () => {
  await gateway.close();
  devServer.closeAllConnections();
  devServer.close();
  dynamodb.destroy();
});

describe('opening a preview URL', () => {
  it('exchanges the URL token for an HttpOnly cookie scoped to the container and redirects to the clean URL', async () => {
    // Act
    const opened = await get(`/p/${JOHN_ID}/index.html?x=1&berth_preview=${urlToken(JOHN_ID)}`);

    // Assess
    expect(opened.status).toBe(303);
    expect(opened.headers.location).toBe(`/p/${JOHN_ID}/index.html?x=1`);
    const setCookie = opened.headers['set-cookie']?.[0] ?? '';
    expect(setCookie).toMatch(/^berth_preview=[^;]+;/);
    expect(setCookie).toContain(`Path=/p/${JOHN_ID}/`);
    expect(setCookie).toContain('HttpOnly');
    expect(opened.body).not.toContain(PAGE);
  });

  it('serves the dev server through the cookie, without passing the preview cookie on', async () => {
    // Prepare
    const opened = await get(`/p/${JOHN_ID}/?berth_preview=${urlToken(JOHN_ID)}`);
    const cookie = (opened.headers['set-cookie']?.[0] ?? '').split(';')[0] ?? '';

    // Act
    const page = await get(`/p/${JOHN_ID}/index.html`, { cookie: `theme=dark; ${cookie}` });

    // Assess
    expect(page.status).toBe(200);
    expect(page.body).toBe(PAGE);
    expect(lastSeenHeaders.cookie).toBe('theme=dark');
  });

  it('keeps redirects of the dev server inside the container', async () => {
    // Act
    const moved = await get(`/p/${JOHN_ID}/moved`, { cookie: cookieFor(JOHN_ID) });

    // Assess
    expect(moved.status).toBe(302);
    expect(moved.headers.location).toBe(`/p/${JOHN_ID}/index.html`);
  });

  it('serves the host-name form <containerId>.<domain> with a cookie of that container', async () => {
    // Act
    const page = await get('/index.html', {
      host: `${JOHN_ID}.${DOMAIN}`,
      cookie: cookieFor(JOHN_ID),
    });

    // Assess
    expect(page.status).toBe(200);
    expect(page.body).toBe(PAGE);
  });
});

describe('refusals (never the page)', () => {
  it("refuses another user's container's token and cookie (403), an expired or missing one (401), an API token (401)", async () => {
    // Prepare
    const expired = urlToken(JOHN_ID, new Date(Date.now() - 3_600_000));
    const apiToken = mintToken(SECRET, { client: 'acme', sub: 'john', role: 'user' });

    // Act
    const answers = await Promise.all([
      get(`/p/${JOHN_ID}/index.html?berth_preview=${urlToken(MARY_ID)}`),
      get(`/p/${JOHN_ID}/index.html`, { cookie: cookieFor(MARY_ID) }),
      get(`/p/${JOHN_ID}/index.html?berth_preview=${expired}`),
      get(`/p/${JOHN_ID}/index.html`),
      get(`/p/${JOHN_ID}/index.html?berth_preview=${apiToken}`),
      get(`/p/${JOHN_ID}/index.html`, { cookie: `berth_preview=${urlToken(JOHN_ID)}` }),
    ]);

    // Assess
    expect(answers.map((a) => a.status)).toEqual([403, 403, 401, 401, 401, 401]);
    expect(answers[2]?.body).toContain('expired');
    for (const answer of answers) {
      expect(answer.body).not.toContain(PAGE);
      expect(answer.headers['set-cookie']).toBeUndefined();
    }
  });

  it('refuses paths that try to leave the container, and headers naming another container (400)', async () => {
    // Prepare
    const cookie = cookieFor(JOHN_ID);

    // Act
    const answers = await Promise.all([
      get(`/p/${JOHN_ID}/../${MARY_ID}/index.html`, { cookie }),
      get(`/p/${JOHN_ID}/%2e%2e/${MARY_ID}/index.html`, { cookie }),
      get(`/p/${JOHN_ID}/..%2f${MARY_ID}%2findex.html`, { cookie }),
      get(`/p/${JOHN_ID}/%2F..%2F..%2Fetc%2Fpasswd`, { cookie }),
      get(`/p/${JOHN_ID}/..\\index.html`, { cookie }),
      get(`/p/${JOHN_ID}/index.html`, { cookie, host: `${MARY_ID}.${DOMAIN}` }),
      get(`/p/${JOHN_ID}/index.html`, { cookie, 'x-forwarded-host': `${MARY_ID}.${DOMAIN}` }),
      get('/index.html', {
        cookie,
        host: `${JOHN_ID}.${DOMAIN}`,
        'x-forwarded-host': `${MARY_ID}.${DOMAIN}`,
      }),
      get('/index.html', { cookie, host: `not..valid.${DOMAIN}` }),
    ]);

    // Assess
    // A Host naming Mary's container routes there, where John's cookie opens nothing (403).
    expect(answers.map((a) => a.status)).toEqual([400, 400, 400, 400, 400, 403, 400, 400, 400]);
    for (const answer of answers) expect(answer.body).not.toContain(PAGE);
  });
});

describe('WebSocket (hot reload)', () => {
  it('passes an upgrade through to the dev server with the cookie, and refuses it without', async () => {
    // Prepare
    const wsUrl = `${gatewayUrl.replace('http:', 'ws:')}/p/${JOHN_ID}/hmr`;

    // Act
    const socket = new WebSocket(wsUrl, { headers: { cookie: cookieFor(JOHN_ID) } });
    await once(socket, 'open');
    socket.send('ping');
    const [reply] = (await once(socket, 'message')) as [Buffer];
    socket.close();
    const refused = new WebSocket(wsUrl);
    const [, response] = (await once(refused, 'unexpected-response')) as [
      unknown,
      { statusCode: number },
    ];

    // Assess
    expect(reply.toString()).toBe('echo:ping');
    expect(response.statusCode).toBe(401);
  });
});

describe('an open WebSocket as activity', () => {
  it('touches the container again while the page exchanges messages past the touch interval', async () => {
    // Prepare: the upgrade itself is the first touch
    const containerId = await runningWithShortIdleTimeout({ ...JOHN, userId: 'ana' });
    const socket = await openSocket(containerId, '/hmr');
    const first = (await eventually(containerId, (r) => r?.previewActiveAt !== undefined))
      ?.previewActiveAt;

    // Act: messages both ways (no HTTP request), until the record moves or 10 s passed
    const deadline = Date.now() + 10_000;
    let replies = 0;
    let record = await deps.store.getContainer(containerId);
    while (record?.previewActiveAt === first && Date.now() < deadline) {
      socket.send('ping');
      await once(socket, 'message');
      replies += 1;
      await new Promise((resolve) => setTimeout(resolve, 50));
      record = await deps.store.getContainer(containerId);
    }
    socket.close();

    // Assess
    expect(first).toBeDefined();
    expect(replies).toBeGreaterThan(0);
    expect(record?.previewActiveAt).toBeDefined();
    expect(record?.previewActiveAt).not.toBe(first);
    expect((record?.previewActiveAt ?? '') >= isoAfter(first, SHORT_TOUCH_INTERVAL_MS)).toBe(true);
    expect(useCases.containers.json(record as ContainerRecord).keptAliveBy).toContain('preview');
  });

  it("counts a dev server's pushes over an open socket, and never a silent open socket", async () => {
    // Prepare: two containers, one whose dev server pushes updates to a page that sends
    // nothing, one whose socket stays open and silent; both touched by their upgrade
    const pushedId = await runningWithShortIdleTimeout({ ...JOHN, userId: 'bob' });
    const silentId = await runningWithShortIdleTimeout({ ...JOHN, userId: 'cleo' });
    const pushed = await openSocket(pushedId, '/push');
    const silent = await openSocket(silentId, '/hmr');
    const silentFirst = (await eventually(silentId, (r) => r?.previewActiveAt !== undefined))
      ?.previewActiveAt;
    let updates = 0;
    pushed.on('message', () => (updates += 1));

    // Act: until the pushed container is touched two intervals after the silent one's
    // upgrade, so a touch of the silent one would have been due by then
    const pushedLater = await eventually(
      pushedId,
      (r) => (r?.previewActiveAt ?? '') >= isoAfter(silentFirst, 2 * SHORT_TOUCH_INTERVAL_MS),
      10_000,
    );
    const silentLater = await deps.store.getContainer(silentId);
    const silentOpen = silent.readyState === WebSocket.OPEN;
    pushed.close();
    silent.close();

    // Assess
    expect(silentFirst).toBeDefined();
    expect(updates).toBeGreaterThan(0);
    expect(
      (pushedLater?.previewActiveAt ?? '') >= isoAfter(silentFirst, 2 * SHORT_TOUCH_INTERVAL_MS),
    ).toBe(true);
    expect(silentOpen).toBe(true);
    expect(silentLater?.previewActiveAt).toBe(silentFirst);
  });
});

describe('activity and starting', () => {
  it('records a preview request as activity on the container (previewActiveAt)', async () => {
    // Prepare
    const before = await deps.store.getContainer(MARY_ID);

    // Act
    const page = await get(`/p/${MARY_ID}/index.html`, { cookie: cookieFor(MARY_ID) });
    const after = await eventually(MARY_ID, (r) => r?.previewActiveAt !== undefined);

    // Assess
    expect(page.status).toBe(200);
    expect(before?.previewActiveAt).toBeUndefined();
    expect(after?.previewActiveAt).toBeDefined();
    expect(useCases.containers.json(after as ContainerRecord).keptAliveBy).toContain('preview');
  });

  it('starts a stopped container when its preview is opened: the waiting page first, the page once it runs', async () => {
    // Prepare
    const key: ContainerKey = { clientId: 'acme', projectId: 'blog', userId: 'john' };
    const containerId = containerIdOf(key);
    const first = await runningContainer(key);
    await stopContainer(containerId);
    const cookie = cookieFor(containerId);

    // Act
    const waiting = await get(`/p/${containerId}/index.html`, { cookie });
    const started = await deps.store.getContainer(containerId);
    await runningContainer(key);
    const served = await get(`/p/${containerId}/index.html`, { cookie });

    // Assess
    expect(waiting.status).toBe(503);
    expect(waiting.headers['retry-after']).toBe('2');
    expect(waiting.body).toContain('http-equiv="refresh"');
    expect(waiting.body).not.toContain(PAGE);
    expect(started).toMatchObject({ status: 'starting', generation: first.generation + 1 });
    expect(served.status).toBe(200);
    expect(served.body).toBe(PAGE);
  });
});

describe('logging', () => {
  it('never writes a preview token into its log, whatever it answers', async () => {
    // Prepare: a gateway logging at info into memory
    const lines: string[] = [];
    const logged = await buildGatewayApp({
      preview: useCases.preview,
      store: deps.store,
      authSecret: SECRET,
      domain: DOMAIN,
      cookieTtlMs: 3_600_000,
      secureCookies: false,
      cacheTtlMs: 0,
      idleTimeoutMs: 20 * 60_000,
      registry: new Registry(),
      logger: pino({ level: 'info' }, { write: (line: string) => void lines.push(line) }),
    });
    const token = urlToken(JOHN_ID);
    const foreign = urlToken(MARY_ID);

    // Act
    const exchanged = await logged.inject({ url: `/p/${JOHN_ID}/?berth_preview=${token}` });
    const refused = await logged.inject({ url: `/p/${JOHN_ID}/?berth_preview=${foreign}` });
    await logged.close();

    // Assess
    expect([exchanged.statusCode, refused.statusCode]).toEqual([303, 403]);
    expect(lines.length).toBeGreaterThan(0);
    for (const line of lines) {
      expect(line).not.toContain(token);
      expect(line).not.toContain(foreign);
    }
  });
});
