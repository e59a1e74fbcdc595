/**
 * The dev server on the local stack (issue 19, item 1): every container runs the stack's
 * default static server of its workspace, on a port of its own, and its record says where it
 * answers (`devServer.url`), whether the container was claimed from the warm pool or started
 * cold. Real DynamoDB Local, fauxqs, local runtime, workspace agents and static servers.
 */
import type { ContainerJson } from '@berth/domain';
import { STATIC_SITE_COMMAND } from '../src/stack/harness.ts';
import { containerOf, eventually, http, stackForSuite } from './stack-helpers.ts';

type Discovered = { container: ContainerJson; source: string };

const local = stackForSuite({
  BERTH_IDLE_TIMEOUT: '10m',
  BERTH_POOL_SIZE: '1',
  BERTH_DEV_SERVER_COMMAND: STATIC_SITE_COMMAND,
});

const discover = (userId: string) =>
  http<Discovered>(local.stack, 'POST', '/v1/containers/discover?wait=60', {
    body: { clientId: 'acme', projectId: 'site', userId },
  });

/** The container once its dev server is up, as the API shows it. */
const upContainer = (containerId: string) =>
  eventually(
    `${containerId}'s dev server up`,
    async () => {
      const container = await containerOf(local.stack, containerId);
      return container.devServer?.state === 'up' && container.devServer.url ? container : undefined;
    },
    90_000,
  );

describe('the dev server on the local stack', () => {
  it('serves each workspace at the url its container JSON gives, on a port of its own, pool-claimed or cold', async () => {
    // Act: two containers (the first takes the pool's member once it is free, the second
    // whatever is there then).
    await eventually(
      'a free pool member',
      async () => {
        const [slot] = await local.clients.store.readPool(1);
        return slot?.member?.state === 'free' && slot.member.controlQueueUrl ? true : undefined;
      },
      90_000,
    );
    const first = await discover('ann');
    const second = await discover('bob');
    const [ann, bob] = await Promise.all([
      upContainer(first.body.container.containerId),
      upContainer(second.body.container.containerId),
    ]);
    const pages = await Promise.all(
      [ann, bob].map(async (container) => {
        const response = await fetch(`${container.devServer?.url}/README.md`);
        return { status: response.status, body: await response.text() };
      }),
    );

    // Assess
    for (const container of [ann, bob]) {
      expect(container.status).toBe('running');
      expect(container.endpoint).toBe('127.0.0.1');
      expect(container.devServer).toMatchObject({
        state: 'up',
        restarts: 0,
        url: `http://127.0.0.1:${container.devServer?.port}`,
      });
    }
    expect(ann.devServer?.port).not.toBe(bob.devServer?.port);
    for (const page of pages) {
      expect(page.status).toBe(200);
      expect(page.body.length).toBeGreaterThan(0);
    }
    expect(first.body.source).toBe('pool');
    expect(['pool', 'created']).toContain(second.body.source);
  });
});
