import { jest } from '@jest/globals';
import { UseCases, noMetrics } from '../src/index.ts';
import { containerIdOf, stopReason } from '@berth/domain';
import {
  CONTAINER_ID,
  KEY,
  OTHER_KEY,
  assignCommand,
  releaseCommand,
  runningContainer,
  stored,
  world,
} from './support.ts';

const OTHER_ID = containerIdOf(OTHER_KEY);
const IDLE_TIMEOUT = 20 * 60_000;

describe('Reaper.stopIdle', () => {
  it('stops a container idle for exactly the timeout, not one idle for less', async () => {
    // Prepare
    const w = world({ settings: { idleTimeoutMs: IDLE_TIMEOUT } });
    await runningContainer(w, KEY);
    w.deps.clock.advance('5m');
    await runningContainer(w, OTHER_KEY);
    w.deps.clock.advance('15m');

    // Act
    const result = await w.useCases.reaper.stopIdle();

    // Assess
    expect(result).toEqual({ stopped: 1, keptAliveByMessages: 0 });
    expect(await stored(w.deps, CONTAINER_ID)).toMatchObject({
      status: 'terminating',
      stopReason: 'idle',
    });
    expect(await stored(w.deps, OTHER_ID)).toMatchObject({ status: 'running' });
  });

  it('counts a container once when the tick and the sweep stop idle containers at the same time', async () => {
    // Prepare
    const w = world({ settings: { idleTimeoutMs: IDLE_TIMEOUT } });
    const idleStops: number[] = [];
    const useCases = new UseCases({
      ...w.deps,
      metrics: { ...noMetrics, idleStop: (seconds: number) => idleStops.push(seconds) },
    });
    await runningContainer(w);
    w.deps.clock.advance(IDLE_TIMEOUT);

    // Act
    await Promise.all([useCases.reaper.stopIdle(), useCases.reaper.sweep()]);

    // Assess
    expect(idleStops).toHaveLength(1);
    expect(w.deps.runtime.stopCalls).toHaveLength(1);
    expect((await stored(w.deps)).status).toBe('terminating');
  });

  it('stops nothing a millisecond before the timeout', async () => {
    // Prepare
    const w = world({ settings: { idleTimeoutMs: IDLE_TIMEOUT } });
    await runningContainer(w);
    w.deps.clock.advance(IDLE_TIMEOUT - 1);

    // Act
    const result = await w.useCases.reaper.stopIdle();

    // Assess
    expect(result.stopped).toBe(0);
    expect((await stored(w.deps)).status).toBe('running');
  });

  it('counts idleness from when the last session left', async () => {
    // Prepare
    const w = world({ settings: { idleTimeoutMs: IDLE_TIMEOUT } });
    await runningContainer(w);
    await w.useCases.sessions.assign(assignCommand('s1'));
    w.deps.clock.advance('1h');
    await w.useCases.sessions.release(releaseCommand('s1'));
    w.deps.clock.advance('19m');

    // Act
    const early = await w.useCases.reaper.stopIdle();
    w.deps.clock.advance('1m');
    const due = await w.useCases.reaper.stopIdle();

    // Assess
    expect([early.stopped, due.stopped]).toEqual([0, 1]);
  });

  it('does not stop a container with an active session', async () => {
    // Prepare
    const w = world({ settings: { idleTimeoutMs: IDLE_TIMEOUT } });
    await runningContainer(w);
    await w.useCases.sessions.assign(assignCommand('s1'));
    w.deps.clock.advance('3h');

    // Act
    const result = await w.useCases.reaper.stopIdle();

    // Assess
    expect(result.stopped).toBe(0);
    expect((await stored(w.deps)).status).toBe('running');
    expect(w.deps.runtime.stopCalls).toEqual([]);
  });

  it('does not stop a container with messages in flight', async () => {
    // Prepare
    const w = world({ settings: { idleTimeoutMs: IDLE_TIMEOUT } });
    const running = await runningContainer(w);
    w.deps.queues.setMessagesInFlight(running.inputQueueUrl!, 1);
    w.deps.clock.advance('1h');

    // Act
    const result = await w.useCases.reaper.stopIdle();

    // Assess
    expect(result).toEqual({ stopped: 0, keptAliveByMessages: 1 });
    expect((await stored(w.deps)).status).toBe('running');
  });

  it('does not stop a container that a session joined between the query and the stop', async () => {
    // Prepare
    const w = world({ settings: { idleTimeoutMs: IDLE_TIMEOUT } });
    await runningContainer(w);
    w.deps.clock.advance('1h');
    const listIdle = w.deps.store.listIdleContainers.bind(w.deps.store);
    jest.spyOn(w.deps.store, 'listIdleContainers').mockImplementationOnce(async (before, limit) => {
      const due = await listIdle(before, limit);
      await w.useCases.sessions.assign(assignCommand('late'));
      return due;
    });

    // Act
    const result = await w.useCases.reaper.stopIdle();

    // Assess
    expect(result.stopped).toBe(0);
    expect(await stored(w.deps)).toMatchObject({ status: 'running', sessions: ['late'] });
    expect(w.deps.runtime.stopCalls).toEqual([]);
    expect(w.deps.publisher.ofType('container.terminating')).toEqual([]);
  });

  it('stops a container once its idle time is up and the task then ends it as stopped (idle)', async () => {
    // Prepare
    const w = world({ settings: { idleTimeoutMs: IDLE_TIMEOUT } });
    const running = await runningContainer(w);
    w.deps.clock.advance(IDLE_TIMEOUT);
    await w.useCases.reaper.stopIdle();

    // Act
    await w.useCases.taskEvents.handle(
      w.deps.runtime.change(running.taskArn!, { lastStatus: 'STOPPED', exitCode: 0 }),
    );

    // Assess
    expect(w.deps.runtime.stopCalls).toEqual([{ taskArn: running.taskArn, reason: 'idle' }]);
    expect(await stored(w.deps)).toMatchObject({ status: 'stopped', stopReason: 'idle' });
  });
});

describe('Reaper.sweep', () => {
  it('fails a container stuck starting past the start timeout and stops its task', async () => {
    // Prepare
    const w = world({ settings: { startTimeoutMs: 5 * 60_000 } });
    const { container } = await w.useCases.containers.findOrStart(KEY);
    w.deps.clock.advance('4m');
    await w.useCases.containers.findOrStart(OTHER_KEY);
    w.deps.clock.advance('1m');

    // Act
    const report = await w.useCases.reaper.sweep();
    const meanwhile = await stored(w.deps, CONTAINER_ID);
    await w.useCases.taskEvents.handle(
      w.deps.runtime.change(container.taskArn!, { lastStatus: 'STOPPED', exitCode: 0 }),
    );

    // Assess
    expect(report.startTimedOut).toBe(1);
    // Until its task has ended it stays starting (no next generation on the same workspace).
    expect(meanwhile).toMatchObject({
      status: 'starting',
      stopReason: expect.stringMatching(/^start_failed:/) as unknown,
    });
    expect(await stored(w.deps, CONTAINER_ID)).toMatchObject({
      status: 'failed',
      stopReason: expect.stringMatching(/^start_failed:/) as unknown,
    });
    expect(await stored(w.deps, OTHER_ID)).toMatchObject({ status: 'starting' });
    expect(w.deps.runtime.stopCalls.map((c) => c.taskArn)).toEqual([container.taskArn]);
  });

  it('forces a task still running past the grace period and says so in the stop reason', async () => {
    // Prepare
    const w = world({ settings: { shutdownGraceMs: 60_000 } });
    const running = await runningContainer(w);
    await w.useCases.containers.stop(CONTAINER_ID, stopReason('idle'));
    w.deps.clock.advance('2m');

    // Act
    const report = await w.useCases.reaper.sweep();
    await w.useCases.taskEvents.handle(
      w.deps.runtime.change(running.taskArn!, { lastStatus: 'STOPPED', exitCode: 137 }),
    );

    // Assess
    expect(report.terminatingResolved).toBe(0);
    expect(w.deps.runtime.stopCalls.map((c) => c.reason)).toEqual([
      'idle',
      'forced:idle did not finish within the grace period',
    ]);
    expect(await stored(w.deps)).toMatchObject({
      status: 'stopped',
      stopReason: 'forced:idle did not finish within the grace period',
    });
  });

  it('leaves a container terminating within the grace period alone', async () => {
    // Prepare
    const w = world({ settings: { shutdownGraceMs: 60_000 } });
    await runningContainer(w);
    await w.useCases.containers.stop(CONTAINER_ID, stopReason('idle'));
    w.deps.clock.advance('30s');

    // Act
    await w.useCases.reaper.sweep();

    // Assess
    expect(w.deps.runtime.stopCalls).toHaveLength(1);
    expect((await stored(w.deps)).stopReason).toBe('idle');
  });

  it('resolves a container terminating past the grace whose task is gone as stopped', async () => {
    // Prepare
    const w = world({ settings: { shutdownGraceMs: 60_000 } });
    const running = await runningContainer(w);
    await w.useCases.containers.stop(CONTAINER_ID, stopReason('manual'));
    w.deps.runtime.vanish(running.taskArn!);
    w.deps.clock.advance('2m');

    // Act
    const report = await w.useCases.reaper.sweep();

    // Assess
    expect(report.terminatingResolved).toBe(1);
    expect(await stored(w.deps)).toMatchObject({ status: 'stopped', stopReason: 'manual' });
    expect(w.deps.queues.has(running.inputQueueUrl!)).toBe(false);
  });

  it('expires stale sessions as part of the sweep', async () => {
    // Prepare
    const w = world({ settings: { sessionTtlMs: 60 * 60_000 } });
    await runningContainer(w);
    await w.useCases.sessions.assign(assignCommand('s1'));
    w.deps.clock.advance('61m');

    // Act
    const report = await w.useCases.reaper.sweep();

    // Assess
    expect(report.sessionsExpired).toBe(1);
    expect(await w.deps.store.getSession('s1')).toMatchObject({ status: 'expired' });
  });
});

describe('Reaper.reconcile', () => {
  it('closes a live record whose task is gone as failed (lost)', async () => {
    // Prepare
    const w = world();
    const running = await runningContainer(w);
    w.deps.runtime.vanish(running.taskArn!);

    // Act
    const result = await w.useCases.reaper.reconcile();

    // Assess
    expect(result).toEqual({ lostRecords: 1, orphanTasksStopped: 0 });
    expect(await stored(w.deps)).toMatchObject({
      status: 'failed',
      stopReason: expect.stringMatching(/^lost:/) as unknown,
    });
  });

  it('stops a task no record owns', async () => {
    // Prepare
    const w = world();
    await runningContainer(w);
    const orphan = w.deps.runtime.adopt({
      ...OTHER_KEY,
      containerId: OTHER_ID,
      generation: 4,
      workspacePath: '/w',
      environment: {},
    });

    // Act
    const result = await w.useCases.reaper.reconcile();

    // Assess
    expect(result).toEqual({ lostRecords: 0, orphanTasksStopped: 1 });
    expect(w.deps.runtime.stopCalls.map((c) => c.taskArn)).toEqual([orphan.taskArn]);
  });

  it('stops a task still running for a record that is already final', async () => {
    // Prepare
    const w = world();
    const running = await runningContainer(w);
    await w.useCases.containers.fail(CONTAINER_ID, 1, stopReason('crashed', 'test'));

    // Act
    const result = await w.useCases.reaper.reconcile();

    // Assess
    expect(result.orphanTasksStopped).toBe(1);
    expect(w.deps.runtime.stopCalls.map((c) => c.taskArn)).toEqual([running.taskArn]);
  });

  it('leaves alone the tasks of live records, across pages', async () => {
    // Prepare
    const w = world();
    for (let i = 0; i < 105; i += 1) {
      await runningContainer(w, { clientId: 'acme', projectId: 'web', userId: `u${i}` });
    }

    // Act
    const result = await w.useCases.reaper.reconcile();

    // Assess
    expect(result).toEqual({ lostRecords: 0, orphanTasksStopped: 0 });
    expect(w.deps.runtime.stopCalls).toEqual([]);
  });

  it('leaves alone a task whose starter has not recorded it yet', async () => {
    // Prepare
    const w = world();
    const startTask = w.deps.runtime.startTask.bind(w.deps.runtime);
    let reconciled: Promise<{ lostRecords: number; orphanTasksStopped: number }> | undefined;
    jest.spyOn(w.deps.runtime, 'startTask').mockImplementationOnce(async (spec) => {
      const task = await startTask(spec);
      reconciled = w.useCases.reaper.reconcile();
      await reconciled;
      return task;
    });

    // Act
    await w.useCases.containers.findOrStart(KEY);

    // Assess
    expect(await reconciled).toEqual({ lostRecords: 0, orphanTasksStopped: 0 });
    expect(w.deps.runtime.stopCalls).toEqual([]);
  });
});

describe('Reaper.reconcile and the outbox', () => {
  it("publishes the events a failed publish left in a live container's outbox, once", async () => {
    // Prepare
    const w = world();
    const running = await runningContainer(w);
    w.deps.publisher.failNext(1);
    await w.useCases.containers.stop(CONTAINER_ID, stopReason('manual', 'left pending'));
    expect((await stored(w.deps)).pendingEvents.map((e) => e.type)).toEqual([
      'container.terminating',
    ]);

    // Act
    await w.useCases.reaper.reconcile();

    // Assess
    expect(w.deps.publisher.ofType('container.terminating')).toHaveLength(1);
    expect((await stored(w.deps)).pendingEvents).toEqual([]);
    expect(running.status).toBe('running');
  });
});

describe('Reaper.carryOutStops', () => {
  it('stops the task of a container whose stop was only recorded, once', async () => {
    // Prepare
    const w = world();
    const running = await runningContainer(w);
    const stopTask = jest.spyOn(w.deps.runtime, 'stopTask').mockResolvedValueOnce(undefined);
    await w.useCases.containers.stop(
      CONTAINER_ID,
      stopReason('manual', 'from a service that may not stop tasks'),
    );
    stopTask.mockRestore();

    // Act
    const first = await w.useCases.reaper.carryOutStops();
    const second = await w.useCases.reaper.carryOutStops();

    // Assess
    expect(first).toBe(1);
    expect(second).toBe(0);
    expect(w.deps.runtime.stopCalls).toEqual([
      { taskArn: running.taskArn, reason: 'manual:from a service that may not stop tasks' },
    ]);
  });
});
