/**
 * Issue 19 end to end on the local stack: a container's preview URL, through the preview
 * gateway, serves its dev server (HTTP and the hot-reload WebSocket), counts as activity, and
 * starts the container again once it stopped. The dev server is a real one run by each
 * container's agent (BERTH_DEV_SERVER_COMMAND: tests/fixtures/hot-reload-dev-server.ts, the
 * workspace's files as the local stack's static server serves them, plus a WebSocket).
 */
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { WebSocket } from 'ws';
import type { ContainerJson, SessionJson } from '@berth/domain';
import {
  containerOf,
  eventually,
  http,
  projectRepository,
  receiveAnswer,
  sendToContainer,
  stackForSuite,
} from './stack-helpers.ts';

const DEV_SERVER = fileURLToPath(new URL('./fixtures/hot-reload-dev-server.ts', import.meta.url));
const IDLE_TIMEOUT_MS = 15_000;

type Discovered = { container: ContainerJson; source: string; previewUrl: string };

const local = stackForSuite({
  BERTH_DEV_SERVER_COMMAND: `"${process.execPath}" "${DEV_SERVER}"`,
  BERTH_IDLE_TIMEOUT: `${IDLE_TIMEOUT_MS / 1000}s`,
  BERTH_POLICY_IDLE_TIMEOUT_MIN: '1s',
  BERTH_REAPER_TICK: '500ms',
  BERTH_SHUTDOWN_GRACE: '10s',
});

/** A raw answer of the gateway, redirects not followed. */
async function get(
  path: string,
  cookie?: string,
): Promise<{ status: number; body: string; headers: Headers }> {
  const response = await fetch(`${local.stack.previewUrl}${path}`, {
    redirect: 'manual',
    headers: cookie ? { cookie } : {},
  });
  return { status: response.status, body: await response.text(), headers: response.headers };
}

/** Opens a preview URL as a browser would: the token for a cookie, then the clean URL. */
async function open(previewUrl: string): Promise<{ cookie: string; location: string }> {
  const url = new URL(previewUrl);
  const opened = await get(`${url.pathname}${url.search}`);
  expect(opened.status).toBe(303);
  const cookie = (opened.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
  expect(cookie).toMatch(/^berth_preview=./);
  return { cookie, location: opened.headers.get('location') ?? '' };
}

async function discover(key: { clientId: string; projectId: string; userId: string }) {
  await projectRepository(local.stack, key);
  const answer = await http<Discovered>(local.stack, 'POST', '/v1/containers/discover?wait=30', {
    body: key,
  });
  expect(answer.body.container.status).toBe('running');
  return answer.body;
}

const devServerUp = (containerId: string) =>
  eventually(
    'the dev server to be up',
    async () =>
      (await containerOf(local.stack, containerId)).devServer?.state === 'up' ? true : undefined,
    60_000,
  );

describe('preview URLs on the local stack (issue 19)', () => {
  it('serves a file a session wrote, through a cookie scoped to the container, and passes the hot-reload WebSocket through', async () => {
    // Prepare: a session's message, whose workload writes CHAT.md in the thread's worktree
    const key = { clientId: 'acme', projectId: 'site', userId: 'john' };
    const discovered = await discover(key);
    const sessionId = `preview-${randomUUID().slice(0, 8)}`;
    await local.clients.commands.sendCommand('session.assign', {
      sessionId,
      ...key,
      threadId: 'home',
    });
    await local.clients.events.waitFor({ type: 'session.assigned', sessionId }, 60_000);
    const session = (
      await http<{ session: SessionJson }>(local.stack, 'GET', `/v1/sessions/${sessionId}`)
    ).body.session;
    await sendToContainer(local.clients.sqs, session.inputQueueUrl ?? '', {
      sessionId,
      threadId: 'home',
      text: 'hello from the preview test',
    });
    await receiveAnswer(
      local.clients.sqs,
      session.outputQueueUrl ?? '',
      (a) => a.sessionId === sessionId,
    );
    await devServerUp(discovered.container.containerId);
    const worktree = (session.worktreePath ?? '').slice(
      (discovered.container.workspacePath ?? '').length,
    );

    // Act
    const { cookie, location } = await open(discovered.previewUrl);
    const file = await get(`/p/${discovered.container.containerId}${worktree}/CHAT.md`, cookie);
    const socket = new WebSocket(
      `${local.stack.previewUrl.replace('http:', 'ws:')}/p/${discovered.container.containerId}/__hmr`,
      { headers: { cookie } },
    );
    await once(socket, 'open');
    socket.send('saved');
    const [reload] = (await once(socket, 'message')) as [Buffer];
    socket.close();

    // Assess
    expect(location).toBe(`/p/${discovered.container.containerId}/`);
    expect(worktree).toMatch(/^\/\.berth\/worktrees\//);
    expect(file.status).toBe(200);
    expect(file.body).toContain('hello from the preview test');
    expect(reload.toString()).toBe('reload:saved');
  });

  it("refuses another user's preview token (403), a missing one (401) and a path out of the container (400), never with the page", async () => {
    // Prepare
    const john = await discover({ clientId: 'acme', projectId: 'site', userId: 'john' });
    const mary = await http<{ url: string }>(
      local.stack,
      'POST',
      '/v1/containers/acme.site.mary/preview',
    );
    const johnsCookie = (await open(john.previewUrl)).cookie;
    const marysToken = new URL(mary.body.url).search;

    // Act
    const foreign = await get(`/p/acme.site.john/README.md${marysToken}`);
    const anonymous = await get('/p/acme.site.john/README.md');
    const escape = await get('/p/acme.site.john/..%2f..%2facme.site.mary/README.md', johnsCookie);
    const served = await get('/p/acme.site.john/README.md', johnsCookie);

    // Assess
    expect(mary.status).toBe(200);
    expect([foreign.status, anonymous.status, escape.status]).toEqual([403, 401, 400]);
    expect(served.status).toBe(200);
    for (const refused of [foreign, anonymous, escape]) expect(refused.body).not.toBe(served.body);
  });

  it('keeps an idle container running while previewed (keptAliveBy preview), lets it stop once the previews end, and starts it again when its preview is opened', async () => {
    // Prepare: a container with no session, idle from its start
    const key = { clientId: 'acme', projectId: 'blog', userId: 'ann' };
    const discovered = await discover(key);
    const containerId = discovered.container.containerId;
    await devServerUp(containerId);
    const { cookie } = await open(discovered.previewUrl);

    // Act 1: a page reloaded every second for twice the idle timeout
    const until = Date.now() + 2 * IDLE_TIMEOUT_MS;
    const statuses = new Set<number>();
    while (Date.now() < until) {
      statuses.add((await get(`/p/${containerId}/README.md`, cookie)).status);
      await new Promise((resolve) => setTimeout(resolve, 1_000));
    }
    const whilePreviewed = await containerOf(local.stack, containerId);
    // Act 2: no more previews
    const stopped = await eventually(
      'the container to stop once nobody previews it',
      async () => {
        const container = await containerOf(local.stack, containerId);
        return container.status === 'stopped' ? container : undefined;
      },
      90_000,
    );
    // Act 3: its preview opened again, reloaded (as its waiting page does) until served
    const whileStarting = new Set<number>();
    const reopened = await eventually(
      'the preview to serve the page from a new generation',
      async () => {
        const page = await get(`/p/${containerId}/README.md`, cookie);
        whileStarting.add(page.status);
        return page.status === 200 ? page : undefined;
      },
      90_000,
    );

    // Assess
    expect([...statuses]).toEqual([200]);
    expect(whilePreviewed.status).toBe('running');
    expect(whilePreviewed.generation).toBe(discovered.container.generation);
    expect(whilePreviewed.keptAliveBy).toEqual(['preview']);
    expect(whilePreviewed.previewActiveAt).toEqual(expect.any(String));
    expect(stopped.stopReason).toMatch(/^idle/);
    // The waiting page (503) at most, never an error, before the page itself.
    expect([...whileStarting].filter((status) => status !== 200 && status !== 503)).toEqual([]);
    expect(reopened.body).toContain(key.projectId);
    const again = await containerOf(local.stack, containerId);
    expect(again.generation).toBe(discovered.container.generation + 1);
    expect(again.status).toBe('running');
  });
});
