/**
 * Lifecycle policies on the local stack (issue 17): real DynamoDB Local, fauxqs, the local
 * runtime, the workspace agent and one reaper. docs/design.md, "Lifecycle policies and quotas".
 */
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { threadBranch, type ContainerJson } from '@berth/domain';
import {
  bareRepoOf,
  containerOf,
  eventually,
  fileOnBranch,
  http,
  onHost,
  queueDepth,
  stackForSuite,
  tokenFor,
} from './stack-helpers.ts';

type Discovered = { container: ContainerJson; source: string };

const local = stackForSuite({
  BERTH_IDLE_TIMEOUT: '10m',
  BERTH_REAPER_TICK: '500ms',
  BERTH_SWEEP_INTERVAL: '5s',
  BERTH_SHUTDOWN_GRACE: '10s',
  BERTH_POLICY_IDLE_TIMEOUT_MIN: '1s',
  BERTH_EXPIRY_NOTICE: '4s',
});

const setPolicy = async (clientId: string, policy: object, token?: string) =>
  http(local.stack, 'PUT', `/v1/policies/${clientId}`, {
    body: policy,
    ...(token ? { token } : {}),
  });

async function discoverRunning(clientId: string, userId = 'ann'): Promise<ContainerJson> {
  const answer = await http<Discovered>(local.stack, 'POST', '/v1/containers/discover?wait=60', {
    body: { clientId, projectId: 'site', userId },
  });
  expect(answer.status).toBe(201);
  expect(answer.body.container.status).toBe('running');
  return answer.body.container;
}

describe('lifecycle policies on the local stack', () => {
  it('honours an idle timeout of 3s for one client and 20m for another under one reaper', async () => {
    // Arrange
    expect((await setPolicy('fastco', { idleTimeout: '3s' })).status).toBe(200);
    expect((await setPolicy('slowco', { idleTimeout: '20m' })).status).toBe(200);

    // Act
    const [fast, slow] = await Promise.all([discoverRunning('fastco'), discoverRunning('slowco')]);
    const terminating = await local.clients.events.waitFor(
      { type: 'container.terminating', containerId: fast.containerId },
      60_000,
    );

    // Assess
    expect((terminating.payload.container as ContainerJson).stopReason).toBe('idle');
    const slowNow = await containerOf(local.stack, slow.containerId);
    expect(slowNow.status).toBe('running');
    expect(slowNow.idleStopAt).toBe(
      new Date(Date.parse(slowNow.idleSince ?? '') + 20 * 60_000).toISOString(),
    );
    const fastRecord = await local.clients.store.getContainer(fast.containerId);
    // Never before its own timeout.
    expect(Date.parse(fastRecord?.terminatingSince ?? '')).toBeGreaterThanOrEqual(
      Date.parse(fast.idleSince ?? '') + 3000,
    );
  }, 180_000);

  it('applies a shortened idle timeout without a restart, counting from the change', async () => {
    // Arrange
    const container = await discoverRunning('slowco', 'bob');
    expect(container.idleStopAt).toBe(
      new Date(Date.parse(container.idleSince ?? '') + 20 * 60_000).toISOString(),
    );

    // Act
    const changedAt = Date.now();
    expect((await setPolicy('slowco', { idleTimeout: '2s' })).status).toBe(200);
    const terminating = await local.clients.events.waitFor(
      { type: 'container.terminating', containerId: container.containerId },
      60_000,
    );

    // Assess
    expect((terminating.payload.container as ContainerJson).stopReason).toBe('idle');
    const record = await local.clients.store.getContainer(container.containerId);
    expect(Date.parse(record?.terminatingSince ?? '')).toBeGreaterThanOrEqual(changedAt + 2000);
  }, 180_000);

  it('stops a busy container at its maxLifetime after container.expiring, saving its work', async () => {
    // Arrange
    expect((await setPolicy('lifeco', { maxLifetime: '12s' })).status).toBe(200);
    const container = await discoverRunning('lifeco');
    expect(container.expiresAt).toBe(
      new Date(Date.parse(container.createdAt ?? '') + 12_000).toISOString(),
    );
    const sessionId = 'life-session-1';
    await local.clients.commands.sendCommand('session.assign', {
      clientId: 'lifeco',
      projectId: 'site',
      userId: 'ann',
      sessionId,
      threadId: 't1',
    });
    await local.clients.events.waitFor({ type: 'session.assigned', sessionId }, 60_000);
    const session = await local.clients.store.getSession(sessionId);
    const worktree = onHost(local.stack, session?.worktreePath ?? '');
    const inputQueueUrl = session?.inputQueueUrl ?? '';
    await eventually(
      `the worktree ${worktree}`,
      async () =>
        existsSync(join(worktree, '.git')) &&
        (await queueDepth(local.clients.sqs, inputQueueUrl)) === 0
          ? true
          : undefined,
      60_000,
    );
    writeFileSync(join(worktree, 'notes.md'), 'written before the lifetime ended\n');

    // Act
    const expiring = await local.clients.events.waitFor(
      { type: 'container.expiring', containerId: container.containerId },
      60_000,
    );
    const stopped = await local.clients.events.waitFor(
      { type: 'container.stopped', containerId: container.containerId },
      90_000,
    );

    // Assess
    expect(expiring.payload.expiresAt).toBe(container.expiresAt);
    expect((expiring.payload.container as ContainerJson).sessionCount).toBe(1);
    expect(Date.parse(expiring.occurredAt)).toBeLessThanOrEqual(Date.parse(stopped.occurredAt));
    expect((stopped.payload.container as ContainerJson).stopReason).toMatch(/^max_lifetime/);
    expect(
      fileOnBranch(
        bareRepoOf(local.stack, 'lifeco', 'site'),
        threadBranch('ann', 't1'),
        'notes.md',
      ),
    ).toBe('written before the lifetime ended\n');
  }, 240_000);

  it('lets no one but an admin change a policy', async () => {
    // Act
    const byService = await setPolicy(
      'fastco',
      { idleTimeout: '1h' },
      tokenFor(local.stack, 'fastco', 'svc', 'service'),
    );
    const byUser = await setPolicy(
      'fastco',
      { idleTimeout: '1h' },
      tokenFor(local.stack, 'fastco', 'ann'),
    );
    const readByService = await http(local.stack, 'GET', '/v1/policies/fastco', {
      token: tokenFor(local.stack, 'fastco', 'svc', 'service'),
    });

    // Assess
    expect(byService.status).toBe(403);
    expect(byUser.status).toBe(403);
    expect(readByService.status).toBe(200);
    expect(readByService.body).toMatchObject({ policy: { idleTimeout: '3s' } });
  });

  it('refuses the 6th..20th of 20 simultaneous discovers for new projects under a quota of 5, and an assign beyond a quota with reason quota', async () => {
    // Arrange
    expect((await setPolicy('quotaco', { maxProjectsPerClient: 5 })).status).toBe(200);
    expect((await setPolicy('userquota', { maxLiveContainersPerUser: 1 })).status).toBe(200);
    await discoverRunning('userquota');

    // Act
    const answers = await Promise.all(
      Array.from({ length: 20 }, (_, index) =>
        http<{ container?: ContainerJson; error?: { code: string; field?: string } }>(
          local.stack,
          'POST',
          '/v1/containers/discover',
          { body: { clientId: 'quotaco', projectId: `p${index}`, userId: 'ann' } },
        ),
      ),
    );
    const sessionId = 'quota-session-1';
    await local.clients.commands.sendCommand('session.assign', {
      clientId: 'userquota',
      projectId: 'other',
      userId: 'ann',
      sessionId,
    });
    const rejected = await local.clients.events.waitFor(
      { type: 'session.rejected', sessionId },
      60_000,
    );

    // Assess
    expect(answers.filter((answer) => answer.status === 201)).toHaveLength(5);
    const refused = answers.filter((answer) => answer.status === 429);
    expect(refused).toHaveLength(15);
    for (const answer of refused) {
      expect(answer.body.error).toMatchObject({
        code: 'capacity_exceeded',
        field: 'maxProjectsPerClient',
      });
    }
    expect(rejected.payload.reason).toBe('quota');
    expect(rejected.payload.message).toContain('maxLiveContainersPerUser');
  }, 180_000);
});
