/**
 * Issue 12: what holds when a process dies or a call fails between two particular steps.
 * Each test names the window it opens; the fakes fail or stop exactly there.
 */
import { jest } from '@jest/globals';
import {
  UnavailableError,
  newContainerRecord,
  type ContainerRecord,
  stopReason,
} from '@berth/domain';
import {
  CONTAINER_ID,
  KEY,
  assignCommand,
  runningContainer,
  settle,
  stored,
  touchCommand,
  world,
  type World,
} from './support.ts';

/** A generation whose starter won the create and died before provisioning anything. */
async function abandonedStart({ deps }: World, generation = 1): Promise<ContainerRecord> {
  const record: ContainerRecord = {
    ...newContainerRecord({ ...KEY, containerId: CONTAINER_ID }, generation, deps.clock.iso()),
    workspacePath: `/workspaces/${CONTAINER_ID}`,
  };
  await deps.store.write({
    containers: [{ record, expect: { kind: 'new-generation', previousGeneration: null } }],
  });
  return record;
}

describe('case 1: a starter died before RunTask, then an operator stopped the container', () => {
  it('the sweep fails it after the start timeout, with the stop as its reason', async () => {
    // Prepare
    const w = world({ settings: { startTimeoutMs: 5 * 60_000 } });
    await abandonedStart(w);
    await w.useCases.containers.stop(CONTAINER_ID, stopReason('manual', 'operator'));
    w.deps.clock.advance('5m');

    // Act: the sweep asks for the generation's task by its start token and stops it; that
    // task's end fails the record.
    await w.useCases.reaper.sweep();
    const [task] = w.deps.runtime.liveTasks();
    await w.useCases.taskEvents.handle(
      w.deps.runtime.change(task!.taskArn, { lastStatus: 'STOPPED', exitCode: 0 }),
    );

    // Assess
    expect(w.deps.runtime.stopCalls).toEqual([
      { taskArn: task!.taskArn, reason: 'manual:operator' },
    ]);
    expect(await stored(w.deps)).toMatchObject({
      status: 'failed',
      generation: 1,
      stopReason: 'manual:operator',
    });
    expect(w.deps.publisher.ofType('container.failed')).toHaveLength(1);
  });

  it('a discover after the provisioning window fails it and starts the next generation', async () => {
    // Prepare
    const w = world();
    await abandonedStart(w);
    await w.useCases.containers.stop(CONTAINER_ID, stopReason('manual'));
    w.deps.clock.advance('2m');

    // Act: generation 1's task (adopted or started by its token) is stopped first; the next
    // generation starts once it has ended.
    const whileItStops = await settle(w.useCases.containers.findOrStart(KEY));
    const [task] = w.deps.runtime.liveTasks();
    await w.useCases.taskEvents.handle(
      w.deps.runtime.change(task!.taskArn, { lastStatus: 'STOPPED', exitCode: 0 }),
    );
    const found = await w.useCases.containers.findOrStart(KEY);

    // Assess
    expect(whileItStops.error).toMatchObject({ code: 'conflict' });
    expect(found).toMatchObject({ source: 'created', container: { generation: 2 } });
    expect(w.deps.publisher.ofType('container.failed')[0]?.payload.container).toMatchObject({
      generation: 1,
      status: 'failed',
      stopReason: 'manual',
    });
  });
});

describe('case 1 (and 9): a starter died after RunTask, before recording its task', () => {
  it('adopts the unrecorded task, stops it, and fails the record only once that task has ended', async () => {
    // Prepare
    const w = world({ settings: { startTimeoutMs: 5 * 60_000 } });
    const record = await abandonedStart(w);
    const task = w.deps.runtime.adopt(
      {
        ...KEY,
        containerId: CONTAINER_ID,
        generation: 1,
        workspacePath: record.workspacePath ?? '',
        environment: {},
      },
      'PENDING',
    );
    await w.useCases.containers.stop(CONTAINER_ID, stopReason('manual'));
    w.deps.clock.advance('5m');

    // Act
    await w.useCases.reaper.sweep();
    const meanwhile = await stored(w.deps);
    const discover = w.useCases.containers.findOrStart(KEY);
    await expect(discover).rejects.toMatchObject({ code: 'conflict' });
    await w.useCases.taskEvents.handle(
      w.deps.runtime.change(task.taskArn, { lastStatus: 'STOPPED', exitCode: 0 }),
    );

    // Assess
    expect(meanwhile).toMatchObject({ status: 'starting', taskArn: task.taskArn });
    expect(w.deps.runtime.stopCalls).toEqual([{ taskArn: task.taskArn, reason: 'manual' }]);
    expect(await stored(w.deps)).toMatchObject({ status: 'failed', stopReason: 'manual' });
    expect(w.deps.runtime.liveTasks()).toEqual([]);
  });
});

describe('case 9: a starter died after RunTask, and its task is already stopping', () => {
  /** The starter's RunTask and its clean-up StopTask went through; every record write failed. */
  async function stoppingUnrecordedTask(w: World) {
    const record = await abandonedStart(w);
    const task = w.deps.runtime.adopt({
      ...KEY,
      containerId: CONTAINER_ID,
      generation: 1,
      workspacePath: record.workspacePath ?? '',
      environment: {},
    });
    await w.deps.runtime.stopTask(task.taskArn, 'start_failed:store unavailable');
    // ECS lists only tasks desired RUNNING.
    const listTasks = w.deps.runtime.listTasks.bind(w.deps.runtime);
    jest
      .spyOn(w.deps.runtime, 'listTasks')
      .mockImplementation(async () =>
        (await listTasks()).filter((t) => t.desiredStatus === 'RUNNING'),
      );
    return task;
  }

  it('adopts that task through the start token although ECS no longer lists it, and starts no generation 2 until it has ended', async () => {
    // Prepare
    const w = world();
    const task = await stoppingUnrecordedTask(w);
    w.deps.clock.advance('2m');

    // Act: a discover after the provisioning window closes the abandoned start
    const discover = await settle(w.useCases.containers.findOrStart(KEY));
    const meanwhile = await stored(w.deps);
    const liveWhileSaving = w.deps.runtime.liveTasks().length;
    await w.useCases.taskEvents.handle(
      w.deps.runtime.change(task.taskArn, { lastStatus: 'STOPPED', exitCode: 0 }),
    );
    const next = await w.useCases.containers.findOrStart(KEY);

    // Assess
    expect(discover.error).toMatchObject({ code: 'conflict' });
    expect(meanwhile).toMatchObject({ status: 'starting', generation: 1, taskArn: task.taskArn });
    expect(liveWhileSaving).toBe(1);
    expect(next).toMatchObject({ source: 'created', container: { generation: 2 } });
    expect(w.deps.publisher.ofType('container.failed')[0]?.payload.container).toMatchObject({
      generation: 1,
      taskArn: task.taskArn,
    });
    // The queues its token's spec named are gone with it.
    expect(w.deps.queues.deleted).toContainEqual(w.deps.queues.created[0]);
  });

  it('makes no RunTask where the service may not start tasks (the reaper): it looks in the task list', async () => {
    // Prepare
    const w = world({ settings: { startTimeoutMs: 5 * 60_000, mayStartTasks: false } });
    await stoppingUnrecordedTask(w);
    const startsBefore = w.deps.runtime.startCalls.length;
    w.deps.clock.advance('5m');

    // Act
    await w.useCases.reaper.sweep();

    // Assess
    expect(w.deps.runtime.startCalls).toHaveLength(startsBefore);
    expect(w.deps.queues.created).toEqual([]);
    expect(await stored(w.deps)).toMatchObject({ status: 'failed', generation: 1 });
  });
});

describe('case 2: RunTask succeeded, the record write failed and so did the compensating fail()', () => {
  /** Starts a container whose starter's writes after RunTask fail, and so does its StopTask. */
  async function startWithLostProvisioning(w: World) {
    const startTask = w.deps.runtime.startTask.bind(w.deps.runtime);
    jest.spyOn(w.deps.runtime, 'startTask').mockImplementationOnce(async (spec) => {
      const task = await startTask(spec);
      w.deps.store.failNext('write', new UnavailableError('store: write is unavailable'), 2);
      w.deps.runtime.failNext('stopTask');
      return task;
    });
    await expect(w.useCases.containers.findOrStart(KEY)).rejects.toBeInstanceOf(UnavailableError);
    const [task] = w.deps.runtime.liveTasks();
    if (!task) throw new Error('the task should still be alive');
    return task;
  }

  it('its RUNNING event never makes the record running without queues, and sessions never join it', async () => {
    // Prepare
    const w = world();
    const task = await startWithLostProvisioning(w);
    expect(await stored(w.deps)).toMatchObject({ status: 'starting', inputQueueUrl: null });

    // Act: RUNNING while its starter might still be writing, then once it is evidently gone
    const early = await settle(
      w.useCases.taskEvents.handle(w.deps.runtime.change(task.taskArn, { lastStatus: 'RUNNING' })),
    );
    const afterEarly = await stored(w.deps);
    w.deps.clock.advance('2m');
    const late = await w.useCases.taskEvents.handle(w.deps.runtime.eventFor(task.taskArn));
    const assign = await settle(w.useCases.sessions.assign(assignCommand('s-1')));
    await w.useCases.taskEvents.handle(
      w.deps.runtime.change(task.taskArn, { lastStatus: 'STOPPED', exitCode: 0 }),
    );
    const next = await w.useCases.containers.findOrStart(KEY);

    // Assess
    expect(early.error).toBeInstanceOf(UnavailableError);
    expect(afterEarly).toMatchObject({ status: 'starting', inputQueueUrl: null });
    expect(late).toBe('unprovisioned-stopped');
    expect(assign.error).toMatchObject({ code: 'conflict' });
    expect(await w.deps.store.getSession('s-1')).toBeUndefined();
    expect(w.deps.publisher.ofType('container.running')).toEqual([]);
    expect(w.deps.publisher.ofType('container.failed')[0]?.payload.container).toMatchObject({
      generation: 1,
      stopReason: expect.stringMatching(/^start_failed:/) as unknown,
    });
    expect(next).toMatchObject({ source: 'created', container: { generation: 2 } });
  });

  it('a running record with null queue URLs is not live: discovery stops it and starts the next generation once its task has ended', async () => {
    // Prepare
    const w = world();
    const running = await runningContainer(w);
    w.deps.store.seed({
      containers: [{ ...running, inputQueueUrl: null, outputQueueUrl: null }],
    });

    // Act: asked while its task still runs, then again once that task has ended (case 9)
    const whileItRuns = await settle(w.useCases.containers.findOrStart(KEY));
    const recordWhileItRuns = await stored(w.deps);
    await w.useCases.taskEvents.handle(
      w.deps.runtime.change(running.taskArn!, { lastStatus: 'STOPPED', exitCode: 0 }),
    );
    const found = await w.useCases.containers.findOrStart(KEY);

    // Assess: stopping (never final) while its task ran, stopped for the lost queues after
    expect(whileItRuns.error).toMatchObject({ code: 'conflict', retryable: true });
    expect(recordWhileItRuns).toMatchObject({ status: 'terminating', generation: 1 });
    expect(w.deps.runtime.stopCalls.map((call) => call.taskArn)).toEqual([running.taskArn]);
    expect(found).toMatchObject({ source: 'created', container: { generation: 2 } });
    expect(w.deps.publisher.ofType('container.failed')).toEqual([]);
    expect(w.deps.publisher.ofType('container.stopped')[0]?.payload.container).toMatchObject({
      generation: 1,
      stopReason: 'lost:it has no queues',
    });
  });
});

describe('case 6: a late or duplicated stop never hits the next generation', () => {
  it('a second delivery of one STOPPED, handled on a read from before the first one finished, leaves generation 2 alone', async () => {
    // Prepare: generation 1 running; its task ended after a clean save outside berth
    const w = world();
    const first = await runningContainer(w);
    const stoppedEvent = w.deps.runtime.change(first.taskArn!, {
      lastStatus: 'STOPPED',
      exitCode: 0,
    });
    const readBeforeFirstDelivery = await stored(w.deps);
    await w.useCases.taskEvents.handle(stoppedEvent);
    const second = await runningContainer(w);

    // Act: the other delivery, which read the record while generation 1 was still running
    jest.spyOn(w.deps.store, 'getContainer').mockResolvedValueOnce(readBeforeFirstDelivery);
    await w.useCases.taskEvents.handle(stoppedEvent);

    // Assess
    expect(second.generation).toBe(2);
    expect(await stored(w.deps)).toMatchObject({
      generation: 2,
      status: 'running',
      stopReason: null,
    });
    expect(w.deps.runtime.stopCalls.map((call) => call.taskArn)).not.toContain(second.taskArn);
  });

  it('a stop that names another generation is refused with a ConflictError on field generation', async () => {
    // Prepare
    const w = world();
    const first = await runningContainer(w);
    await w.useCases.containers.stop(CONTAINER_ID, stopReason('manual'), { generation: 1 });
    await w.useCases.taskEvents.handle(
      w.deps.runtime.change(first.taskArn!, { lastStatus: 'STOPPED', exitCode: 0 }),
    );
    await runningContainer(w);

    // Act: the same stop delivered again
    const again = await settle(
      w.useCases.containers.stop(CONTAINER_ID, stopReason('manual'), { generation: 1 }),
    );

    // Assess
    expect(again.error).toMatchObject({ code: 'conflict', field: 'generation', retryable: false });
    expect(await stored(w.deps)).toMatchObject({ generation: 2, status: 'running' });
  });
});

describe('case 10: smaller windows', () => {
  it('a task killed at stopTimeout (exit 137, our own reason echoed back) is recorded as forced, not save_failed', async () => {
    // Prepare
    const w = world();
    const running = await runningContainer(w);
    await w.useCases.containers.stop(CONTAINER_ID, stopReason('idle'), { generation: 1 });

    // Act: ECS sent SIGTERM, waited stopTimeout and sent SIGKILL; it reports our reason
    await w.useCases.taskEvents.handle(
      w.deps.runtime.change(running.taskArn!, {
        lastStatus: 'STOPPED',
        exitCode: 137,
        stopCode: 'UserInitiated',
      }),
    );

    // Assess
    expect(await stored(w.deps)).toMatchObject({
      status: 'stopped',
      stopReason: 'forced:idle did not finish within the grace period',
    });
  });
});

describe('case 10: an expiry never overwrites a concurrent touch', () => {
  it('a touch between the expiry read and its write keeps the session active', async () => {
    // Prepare
    const w = world({ settings: { sessionTtlMs: 2 * 3_600_000 } });
    await runningContainer(w);
    await w.useCases.sessions.assign(assignCommand('s-1'));
    w.deps.clock.advance('2h');
    w.deps.clock.advance('1m');
    const getSession = w.deps.store.getSession.bind(w.deps.store);
    jest.spyOn(w.deps.store, 'getSession').mockImplementationOnce(async (sessionId) => {
      const read = await getSession(sessionId);
      // The client touches the session right after the expiry read it.
      await w.useCases.sessions.touch(touchCommand('s-1'));
      return read;
    });

    // Act
    const expired = await w.useCases.sessionEndings.expireStale();

    // Assess
    expect(expired).toBe(0);
    expect(await w.deps.store.getSession('s-1')).toMatchObject({
      status: 'active',
      lastActivityAt: w.deps.clock.iso(),
    });
  });
});
