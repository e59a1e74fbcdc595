import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { BerthEvent, ContainerJson } from '@berth/domain';
import { verifyWebhook } from '@berth/webhook-signature';
import type { RunningStack } from '../src/stack/harness.ts';
import {
  containerOf,
  eventually,
  http,
  projectRepository,
  startStackRetrying,
  tasksOf,
  tokenFor,
} from './stack-helpers.ts';

type Discovered = { container: ContainerJson; source: string };

let stack: RunningStack;

beforeAll(async () => {
  stack = await startStackRetrying({ BERTH_IDLE_TIMEOUT: '10m' });
}, 180_000);

afterAll(async () => {
  await stack?.stop();
}, 120_000);

describe('discovery on the local stack', () => {
  it('starts exactly one container process, then finds the same one again', async () => {
    // Prepare
    await projectRepository(stack, { clientId: 'acme', projectId: 'website' });

    // Act
    const first = await http<Discovered>(stack, 'POST', '/v1/containers/discover?wait=30', {
      body: { clientId: 'acme', projectId: 'website', userId: 'john' },
    });
    const second = await http<Discovered>(stack, 'POST', '/v1/containers/discover', {
      body: { clientId: 'acme', projectId: 'website', userId: 'john' },
    });

    // Assess
    expect(first.status).toBe(201);
    // Started, or claimed from the warm pool when the stack keeps one (rehearse --pool).
    expect(['created', 'pool']).toContain(first.body.source);
    expect(first.body.container).toMatchObject({
      containerId: 'acme.website.john',
      status: 'running',
      generation: 1,
    });
    expect(first.body.container.inputQueueUrl).toEqual(expect.any(String));
    expect(second.status).toBe(200);
    expect(['cache', 'store']).toContain(second.body.source);
    expect(second.body.container.containerId).toBe('acme.website.john');
    expect(second.body.container.generation).toBe(1);
    // One task, the one its record names (a claimed pool member's is tagged with its slot only).
    const tasks = await tasksOf(stack, second.body.container);
    expect(tasks.map((t) => t.taskArn)).toEqual([second.body.container.taskArn]);
  });

  it('starts one container for many simultaneous discovers of a new triple, and every answer names it', async () => {
    // Prepare
    await projectRepository(stack, { clientId: 'acme', projectId: 'shop' });

    // Act
    const answers = await Promise.all(
      Array.from({ length: 25 }, () =>
        http<Discovered>(stack, 'POST', '/v1/containers/discover', {
          body: { clientId: 'acme', projectId: 'shop', userId: 'mary' },
        }),
      ),
    );

    // Assess
    expect(answers.map((a) => a.status).filter((s) => s === 201)).toHaveLength(1);
    for (const answer of answers) {
      expect([200, 201]).toContain(answer.status);
      expect(answer.body.container.containerId).toBe('acme.shop.mary');
      expect(answer.body.container.generation).toBe(1);
    }
    const tasks = await eventually('the task to be listed', async () => {
      const { body } = await http<{ container: ContainerJson }>(
        stack,
        'GET',
        '/v1/containers/acme.shop.mary',
      );
      if (body.container.taskArn === null) return undefined;
      const list = await tasksOf(stack, body.container);
      return list.length > 0 ? { list, taskArn: body.container.taskArn } : undefined;
    });
    expect(tasks.list.map((t) => t.taskArn)).toEqual([tasks.taskArn]);
  });

  it("refuses a bad token and another user's container", async () => {
    // Prepare
    const mary = tokenFor(stack, 'acme', 'mary');

    // Act
    const noToken = await http(stack, 'GET', '/v1/containers/acme.website.john', { token: null });
    const forged = await http(stack, 'GET', '/v1/containers/acme.website.john', {
      token: `${mary.slice(0, -4)}AAAA`,
    });
    const otherUser = await http(stack, 'GET', '/v1/containers/acme.website.john', { token: mary });
    const otherUserDiscover = await http(stack, 'POST', '/v1/containers/discover', {
      token: mary,
      body: { clientId: 'acme', projectId: 'website', userId: 'john' },
    });
    const own = await http(stack, 'GET', '/v1/containers/acme.shop.mary', { token: mary });

    // Assess
    expect(noToken.status).toBe(401);
    expect(noToken.body).toMatchObject({ error: { code: 'unauthenticated' } });
    expect(forged.status).toBe(401);
    expect(otherUser.status).toBe(403);
    expect(otherUser.body).toMatchObject({ error: { code: 'forbidden' } });
    expect(otherUserDiscover.status).toBe(403);
    expect(own.status).toBe(200);
  });

  it('is ready once its store and its topic answer', async () => {
    // Act
    const ready = await http(stack, 'GET', '/readyz', { token: null });

    // Assess
    expect(ready.status).toBe(200);
    expect(ready.body).toEqual({ status: 'ready', checks: { store: 'ok', bus: 'ok' } });
  });

  it("lists one client's containers to that client, and every container to an admin", async () => {
    // Prepare: two containers of one client, one of another (names unique to this run: the
    // rehearsal's stack is shared with other suites).
    const run = randomUUID().slice(0, 6);
    const keys = [
      { clientId: `lista${run}`, projectId: 'site', userId: 'ann' },
      { clientId: `lista${run}`, projectId: 'shop', userId: 'bob' },
      { clientId: `listb${run}`, projectId: 'site', userId: 'cat' },
    ];
    for (const key of keys) {
      await projectRepository(stack, key);
      const answer = await http<Discovered>(stack, 'POST', '/v1/containers/discover?wait=30', {
        body: key,
      });
      expect(answer.status).toBe(201);
    }
    const [ann, bob, cat] = keys.map((k) => `${k.clientId}.${k.projectId}.${k.userId}`);
    const ids = (answer: { body: { containers: ContainerJson[] } }): string[] =>
      answer.body.containers.map((container) => container.containerId).sort();

    // Act
    const ofClient = await http<{ containers: ContainerJson[] }>(stack, 'GET', '/v1/containers', {
      token: tokenFor(stack, `lista${run}`, 'backend', 'service'),
    });
    const all = await http<{ containers: ContainerJson[] }>(
      stack,
      'GET',
      '/v1/containers?limit=100',
    );
    const byProject = await http<{ containers: ContainerJson[] }>(
      stack,
      'GET',
      '/v1/containers?projectId=site&limit=100',
    );

    // Assess
    expect(ofClient.status).toBe(200);
    expect(ids(ofClient)).toEqual([ann, bob].sort());
    expect(all.status).toBe(200);
    expect(ids(all)).toEqual(expect.arrayContaining([ann, bob, cat]));
    expect(ids(byProject)).toEqual(expect.arrayContaining([ann, cat]));
    expect(ids(byProject)).not.toContain(bob);
  }, 120_000);

  it("holds a client's quota: a user's second live container is refused naming it, and a stop gives the slot back", async () => {
    // Prepare: a client of its own with a per-user quota of one live container (the
    // rehearsal's services then write and read the policy and the quota counters on AWS's
    // terms, so those grants are proven by recorded calls).
    const clientId = `quota${randomUUID().slice(0, 6)}`;
    const site = { clientId, projectId: 'site', userId: 'eve' };
    const shop = { clientId, projectId: 'shop', userId: 'eve' };
    const policy = await http(stack, 'PUT', `/v1/policies/${clientId}`, {
      body: { maxLiveContainersPerUser: 1 },
    });
    expect(policy.status).toBe(200);
    for (const key of [site, shop]) await projectRepository(stack, key);
    const discover = (key: typeof site) =>
      http<Discovered & { error?: { code: string; field?: string } }>(
        stack,
        'POST',
        '/v1/containers/discover?wait=30',
        { body: key },
      );
    const first = await discover(site);
    expect(first.status).toBe(201);
    const firstId = first.body.container.containerId;

    // Act
    const refused = await discover(shop);
    const effective = await http<{ policy: Record<string, { value: unknown; source: string }> }>(
      stack,
      'GET',
      `/v1/containers/${firstId}/policy`,
    );
    await http(stack, 'POST', `/v1/containers/${firstId}/stop`, { body: { reason: 'quota-e2e' } });
    await eventually(
      'the first container to be stopped',
      async () => {
        return (await containerOf(stack, firstId)).status === 'stopped' ? true : undefined;
      },
      60_000,
    );
    const second = await discover(shop);

    // Assess
    expect(refused.status).toBe(429);
    expect(refused.body.error).toMatchObject({
      code: 'capacity_exceeded',
      field: 'maxLiveContainersPerUser',
    });
    expect(effective.status).toBe(200);
    expect(effective.body.policy.maxLiveContainersPerUser).toEqual({ value: 1, source: 'client' });
    expect(second.status).toBe(201);
    expect(second.body.container.containerId).toBe(`${clientId}.shop.eve`);
    expect((await http(stack, 'DELETE', `/v1/policies/${clientId}`)).status).toBe(204);
  }, 180_000);

  it('stops a container on request: terminating at once, then stopped with its task gone', async () => {
    // Prepare
    const key = { clientId: `stop${randomUUID().slice(0, 6)}`, projectId: 'site', userId: 'dan' };
    const containerId = `${key.clientId}.${key.projectId}.${key.userId}`;
    await projectRepository(stack, key);
    const started = await http<Discovered>(stack, 'POST', '/v1/containers/discover?wait=30', {
      body: key,
    });
    expect(started.body.container.status).toBe('running');

    // Act
    const stop = await http<{ container: ContainerJson }>(
      stack,
      'POST',
      `/v1/containers/${containerId}/stop`,
      { body: { reason: 'e2e' } },
    );

    // Assess
    expect(stop.status).toBe(202);
    expect(['terminating', 'stopped']).toContain(stop.body.container.status);
    const stopped = await eventually(
      'the container to be stopped',
      async () => {
        const container = await containerOf(stack, containerId);
        return container.status === 'stopped' ? container : undefined;
      },
      60_000,
    );
    expect(stopped.generation).toBe(1);
    expect(started.body.container.taskArn).toEqual(expect.any(String));
    const tasks = (await tasksOf(stack, started.body.container)).filter(
      (t) => t.lastStatus !== 'STOPPED',
    );
    expect(tasks).toEqual([]);
  }, 120_000);
  it("keeps the lifecycle history: a discover then a stop gives the generation's start, stop, reason, and usage hours", async () => {
    // Prepare
    const key = { clientId: `hist${randomUUID().slice(0, 6)}`, projectId: 'site', userId: 'eve' };
    const containerId = `${key.clientId}.${key.projectId}.${key.userId}`;
    const service = tokenFor(stack, key.clientId, 'svc', 'service');
    await projectRepository(stack, key);
    const started = await http<Discovered>(stack, 'POST', '/v1/containers/discover?wait=30', {
      body: key,
    });
    expect(started.body.container.status).toBe('running');

    // Act
    await http(stack, 'POST', `/v1/containers/${containerId}/stop`, {
      body: { reason: 'history-e2e' },
    });

    // Assess: the task watcher keeps the events from its own subscription to the topic.
    type Generation = {
      generation: number;
      status: string;
      createdAt: string;
      startedAt: string | null;
      stoppedAt: string | null;
      stopReason: string | null;
      durationSeconds: number | null;
      stoppedBy: { commandId: string | null; reason: string } | null;
      events: Array<{ type: string }>;
    };
    const history = await eventually(
      'the stopped generation in the history',
      async () => {
        const answer = await http<{ generations: Generation[] }>(
          stack,
          'GET',
          `/v1/containers/${containerId}/history`,
          { token: service },
        );
        const latest = answer.status === 200 ? answer.body.generations[0] : undefined;
        return latest?.status === 'stopped' ? answer.body.generations : undefined;
      },
      90_000,
    );
    expect(history).toHaveLength(1);
    const [generation] = history;
    expect(generation).toMatchObject({
      generation: 1,
      status: 'stopped',
      createdAt: started.body.container.createdAt,
      stopReason: 'manual:history-e2e',
      stoppedBy: { reason: 'manual' },
    });
    expect(generation?.startedAt).toEqual(expect.any(String));
    expect(generation?.durationSeconds).toBeGreaterThan(0);
    expect(generation?.events.map((event) => event.type)).toEqual(
      expect.arrayContaining(['container.created', 'container.terminating', 'container.stopped']),
    );

    const events = await http<{ events: Array<{ type: string; occurredAt: string }> }>(
      stack,
      'GET',
      `/v1/events?containerId=${containerId}&type=container.*`,
      { token: service },
    );
    expect(events.status).toBe(200);
    expect(events.body.events[0]?.type).toBe('container.stopped');
    const times = events.body.events.map((event) => event.occurredAt);
    expect(times).toEqual([...times].sort().reverse());

    const usage = await http<{
      days: Array<{ projectId: string; containerHours: number; generations: number }>;
      totals: { containerHours: number; generations: number };
    }>(stack, 'GET', '/v1/usage', { token: service });
    expect(usage.status).toBe(200);
    expect(usage.body.totals.generations).toBe(1);
    expect(usage.body.totals.containerHours).toBeCloseTo(
      (generation?.durationSeconds ?? 0) / 3600,
      2,
    );
    expect(new Set(usage.body.days.map((day) => day.projectId))).toEqual(new Set(['site']));
  }, 180_000);

  it("delivers a client's lifecycle events to its webhook, signed (where the deployment refuses http: the routes alone)", async () => {
    // Prepare: a receiver on this machine, and a client of its own.
    const key = { clientId: `hook${randomUUID().slice(0, 6)}`, projectId: 'site', userId: 'ann' };
    const containerId = `${key.clientId}.${key.projectId}.${key.userId}`;
    const service = tokenFor(stack, key.clientId, 'svc', 'service');
    const secret = `whsec-${randomUUID()}`;
    const received: { body: string; signature: string | undefined; event: BerthEvent }[] = [];
    const receiver = createServer((request, response) => {
      let body = '';
      request.on('data', (chunk: Buffer) => (body += chunk.toString('utf8')));
      request.on('end', () => {
        const signature = request.headers['berth-signature'];
        received.push({
          body,
          signature: Array.isArray(signature) ? signature.join(',') : signature,
          event: JSON.parse(body) as BerthEvent,
        });
        response.writeHead(204).end();
      });
    });
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
    const port = (receiver.address() as AddressInfo).port;

    try {
      // Act
      const local = await http<{ url: string }>(stack, 'PUT', `/v1/webhooks/${key.clientId}`, {
        token: service,
        body: { url: `http://127.0.0.1:${port}/hook`, events: ['container.*'], secret },
      });

      if (local.status === 400) {
        // A deployment as on AWS (the rehearsal): https only, no private address. The routes
        // still work, with a public address nobody will be sent anything at (no container).
        expect(local.body).toMatchObject({ error: { field: 'url' } });
        const put = await http(stack, 'PUT', `/v1/webhooks/${key.clientId}`, {
          token: service,
          body: { url: 'https://93.184.215.14/hook', events: ['container.*'], secret },
        });
        const read = await http(stack, 'GET', `/v1/webhooks/${key.clientId}`, { token: service });
        const listed = await http(stack, 'GET', `/v1/webhooks/${key.clientId}/deliveries`, {
          token: service,
        });
        const removed = await http(stack, 'DELETE', `/v1/webhooks/${key.clientId}`, {
          token: service,
        });
        expect([put.status, read.status, listed.status, removed.status]).toEqual([
          200, 200, 200, 204,
        ]);
        expect(JSON.stringify(read.body)).not.toContain(secret);
        expect(listed.body).toEqual({ deliveries: [], nextCursor: null });
        return;
      }
      expect(local.status).toBe(200);
      await projectRepository(stack, key);
      const started = await http<Discovered>(stack, 'POST', '/v1/containers/discover?wait=30', {
        body: key,
      });
      expect(started.body.container.status).toBe('running');
      await eventually(
        'container.created and container.running at the receiver',
        () => {
          const types = received.map((r) => r.event.type);
          return Promise.resolve(
            types.includes('container.created') && types.includes('container.running')
              ? types
              : undefined,
          );
        },
        60_000,
      );

      // Assess: signed with the secret, in order, recorded as delivered; the secret never shown.
      for (const request of received) {
        expect(request.event.containerId).toBe(containerId);
        expect(() =>
          verifyWebhook({ body: request.body, header: request.signature, secret }),
        ).not.toThrow();
      }
      const types = received.map((r) => r.event.type);
      expect(types.indexOf('container.created')).toBeLessThan(types.indexOf('container.running'));
      const delivered = await eventually(
        'the deliveries recorded',
        async () => {
          const answer = await http<{ deliveries: Array<{ eventType: string }> }>(
            stack,
            'GET',
            `/v1/webhooks/${key.clientId}/deliveries?status=delivered`,
            { token: service },
          );
          return answer.body.deliveries.length >= 2 ? answer.body.deliveries : undefined;
        },
        30_000,
      );
      expect(delivered.map((d) => d.eventType)).toEqual(
        expect.arrayContaining(['container.created', 'container.running']),
      );
      const read = await http(stack, 'GET', `/v1/webhooks/${key.clientId}`, { token: service });
      expect(JSON.stringify(read.body)).not.toContain(secret);
    } finally {
      await http(stack, 'POST', `/v1/containers/${containerId}/stop`, { body: {} });
      await http(stack, 'DELETE', `/v1/webhooks/${key.clientId}`, { token: service });
      await new Promise<void>((resolve) => receiver.close(() => resolve()));
    }
  }, 180_000);
});

describe('the preview gateway on the local stack (issue 19; in the deploy rehearsal too)', () => {
  it("exchanges a discover's preview URL for a cookie, and opening a stopped container's preview starts it again", async () => {
    // Prepare
    const key = { clientId: 'acme', projectId: 'gallery', userId: 'kim' };
    await projectRepository(stack, key);
    const discovered = await http<Discovered & { previewUrl: string }>(
      stack,
      'POST',
      '/v1/containers/discover?wait=30',
      { body: key },
    );
    const containerId = discovered.body.container.containerId;
    // The gateway as this stack exposes it (the deploy rehearsal's URLs name its load balancer).
    const { pathname, search } = new URL(discovered.body.previewUrl);
    const gateway = (path: string, cookie?: string) =>
      fetch(`${stack.previewUrl}${path}`, {
        redirect: 'manual',
        headers: cookie ? { cookie } : {},
      });

    // Act
    const opened = await gateway(`${pathname}${search}`);
    const cookie = (opened.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
    await http(stack, 'POST', `/v1/containers/${containerId}/stop`, { body: {} });
    await eventually(
      'the container to stop',
      async () => {
        return (await containerOf(stack, containerId)).status === 'stopped' ? true : undefined;
      },
      90_000,
    );
    const reopened = await gateway(`/p/${containerId}/`, cookie);
    await reopened.arrayBuffer();
    const restarted = await eventually(
      'the preview to start generation 2',
      async () => {
        const container = await containerOf(stack, containerId);
        return container.generation === discovered.body.container.generation + 1 &&
          container.status === 'running'
          ? container
          : undefined;
      },
      90_000,
    );

    // Assess
    expect(pathname).toBe(`/p/${containerId}/`);
    expect(opened.status).toBe(303);
    expect(opened.headers.get('location')).toBe(`/p/${containerId}/`);
    expect(cookie).toMatch(/^berth_preview=./);
    // This stack's containers run no dev server: the gateway says it is waiting for one (503)
    // or that there is none (502), never anything else, and never without starting it.
    expect([502, 503]).toContain(reopened.status);
    expect(restarted.containerId).toBe(containerId);
  }, 180_000);
});
