import type { ContainerJson } from '@berth/domain';
import type { RunningStack } from '../src/stack/harness.ts';
import { eventually, http, runtimeOf, startStackRetrying, tokenFor } from './stack-helpers.ts';

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
    // Act
    const first = await http<Discovered>(stack, 'POST', '/v1/containers/discover?wait=30', {
      body: { clientId: 'acme', projectId: 'website', userId: 'john' },
    });
    const second = await http<Discovered>(stack, 'POST', '/v1/containers/discover', {
      body: { clientId: 'acme', projectId: 'website', userId: 'john' },
    });

    // Assess
    expect(first.status).toBe(201);
    expect(first.body.source).toBe('created');
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
    const tasks = (await runtimeOf(stack).listTasks()).filter(
      (t) => t.containerId === 'acme.website.john',
    );
    expect(tasks).toHaveLength(1);
  });

  it('starts one container for many simultaneous discovers of a new triple, and every answer names it', async () => {
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
      const list = (await runtimeOf(stack).listTasks()).filter(
        (t) => t.containerId === 'acme.shop.mary',
      );
      return list.length > 0 ? list : undefined;
    });
    expect(tasks).toHaveLength(1);
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
});
