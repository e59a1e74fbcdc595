import type { Policy, PolicyStore, StoredPolicy } from '@berth/domain';
import { makeCoreDeps } from '@berth/testing';
import { UseCases, noMetrics } from '../src/index.ts';
import { KEY, OTHER_KEY, assignCommand, runningContainer, stored } from './support.ts';

/** Policies in memory: the store's behaviour is tested on DynamoDB Local (discovery's routes). */
class MemoryPolicies implements PolicyStore {
  readonly items = new Map<string, StoredPolicy>();
  private key = (clientId: string, projectId: string | null) => `${clientId}/${projectId ?? ''}`;
  getPolicy(clientId: string, projectId: string | null) {
    return Promise.resolve(this.items.get(this.key(clientId, projectId)));
  }
  async getPolicies(clientId: string, projectId: string) {
    return {
      client: (await this.getPolicy(clientId, null))?.policy,
      project: (await this.getPolicy(clientId, projectId))?.policy,
    };
  }
  putPolicy(stored: StoredPolicy) {
    this.items.set(this.key(stored.clientId, stored.projectId), stored);
    return Promise.resolve();
  }
  deletePolicy(clientId: string, projectId: string | null) {
    return Promise.resolve(this.items.delete(this.key(clientId, projectId)));
  }
}

function policyWorld(policies: Record<string, Policy>) {
  const deps = makeCoreDeps({ settings: { idleTimeoutMs: 20 * 60_000 } });
  const store = new MemoryPolicies();
  for (const [clientId, policy] of Object.entries(policies)) {
    store.items.set(`${clientId}/`, { clientId, projectId: null, policy, updatedAt: '' });
  }
  const expiries: string[] = [];
  const useCases = new UseCases({
    ...deps,
    metrics: { ...noMetrics, lifetimeExpiry: (stage) => expiries.push(stage) },
    policies: store,
    settings: { ...deps.settings, expiryNoticeMs: 5 * 60_000, policyIdleTimeoutMinMs: 60_000 },
  });
  return { deps, useCases, store, expiries };
}

describe('policies in the core', () => {
  it("refuses an assign beyond the container's own maxSessions, naming it", async () => {
    // Prepare
    const w = policyWorld({ acme: { maxSessions: 1 } });
    await w.useCases.sessions.assign(assignCommand('s1'));

    // Act
    const outcome = await w.useCases.sessions.assign(assignCommand('s2'));

    // Assess
    expect(outcome).toMatchObject({ kind: 'rejected', reason: 'capacity' });
    expect((outcome as { message: string }).message).toContain('maxSessions');
    expect((await stored(w.deps)).sessions).toEqual(['s1']);
  });

  it('stops each idle container by its own timeout, in one pass of the reaper', async () => {
    // Prepare
    const w = policyWorld({
      acme: { idleTimeoutMs: 3 * 60_000 },
      slow: { idleTimeoutMs: 20 * 60_000 },
    });
    const fast = await runningContainer(w, KEY);
    const slow = await runningContainer(w, { ...OTHER_KEY, clientId: 'slow' });
    w.deps.clock.advance('4m');

    // Act
    const report = await w.useCases.reaper.stopIdle();

    // Assess
    expect(report.stopped).toBe(1);
    expect(await stored(w.deps, fast.containerId)).toMatchObject({
      status: 'terminating',
      stopReason: 'idle',
    });
    expect((await stored(w.deps, slow.containerId)).status).toBe('running');
  });

  it('announces container.expiring, then stops a busy container at its maxLifetime', async () => {
    // Prepare
    const w = policyWorld({ acme: { maxLifetimeMs: 10 * 60_000 } });
    await runningContainer(w);
    await w.useCases.sessions.assign(assignCommand('s1'));
    w.deps.clock.advance('6m');

    // Act
    await w.useCases.reaper.stopIdle();
    await w.useCases.reaper.stopIdle();
    const afterNotice = await stored(w.deps);
    const countedAtNotice = [...w.expiries];
    w.deps.clock.advance('5m');
    await w.useCases.reaper.stopIdle();

    // Assess
    expect(afterNotice.status).toBe('running');
    expect(w.deps.publisher.ofType('container.expiring')).toHaveLength(1);
    const stopped = await stored(w.deps);
    expect(stopped.status).toBe('terminating');
    expect(stopped.stopReason).toMatch(/^max_lifetime:/);
    // Counted once each (metrics LifetimeExpiries): a second pass does not notice again.
    expect(countedAtNotice).toEqual(['notice']);
    expect(w.expiries).toEqual(['notice', 'stop']);
  });

  it('applies a changed policy to live containers at once; a shortened idle timeout counts from the change', async () => {
    // Prepare
    const w = policyWorld({ acme: { idleTimeoutMs: 20 * 60_000 } });
    await runningContainer(w);
    w.deps.clock.advance('15m');

    // Act
    await w.useCases.policies.put('acme', null, { idleTimeout: '3m' });
    const right = await w.useCases.reaper.stopIdle();
    w.deps.clock.advance('3m');
    const later = await w.useCases.reaper.stopIdle();

    // Assess
    expect(right.stopped).toBe(0);
    expect(later.stopped).toBe(1);
    expect((await stored(w.deps)).status).toBe('terminating');
  });
});
