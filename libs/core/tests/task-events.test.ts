import { stopReason, type TaskStateChange } from '@berth/domain';
import { CONTAINER_ID, KEY, assignCommand, runningContainer, stored, world } from './support.ts';

/** Everything observable of the store and the bus, to assert that nothing changed. */
function snapshot(w: ReturnType<typeof world>) {
  return {
    containers: w.deps.store.allContainers(),
    sessions: w.deps.store.allSessions(),
    eventIds: [...new Set(w.deps.publisher.events.map((e) => e.eventId))],
  };
}

describe('TaskEventHandler, RUNNING', () => {
  it('moves starting → running, records startedAt, and starts the idle clock without sessions', async () => {
    // Prepare
    const w = world();
    const { container } = await w.useCases.containers.findOrStart(KEY);
    w.deps.clock.advance('40s');

    // Act
    const outcome = await w.useCases.taskEvents.handle(
      w.deps.runtime.change(container.taskArn!, { lastStatus: 'RUNNING' }),
    );

    // Assess
    expect(outcome).toBe('running');
    expect(await stored(w.deps)).toMatchObject({
      status: 'running',
      startedAt: w.deps.clock.iso(),
      idleSince: w.deps.clock.iso(),
    });
    expect(w.deps.publisher.ofType('container.running')).toEqual([
      expect.objectContaining({ eventId: `${CONTAINER_ID}#1/container.running` }),
    ]);
  });

  it("records the task's address from the event's network interface (RunTask's answer on Fargate has none yet)", async () => {
    // Prepare
    const w = world();
    const { container } = await w.useCases.containers.findOrStart(KEY);
    const event = w.deps.runtime.change(container.taskArn!, { lastStatus: 'RUNNING' });
    const withAddress: TaskStateChange = {
      ...event,
      detail: {
        ...event.detail,
        attachments: [
          {
            type: 'eni',
            status: 'ATTACHED',
            details: [
              { name: 'subnetId', value: 'subnet-1' },
              { name: 'privateIPv4Address', value: '10.9.8.7' },
            ],
          },
        ],
      },
    };

    // Act
    await w.useCases.taskEvents.handle(withAddress);

    // Assess
    expect(await stored(w.deps)).toMatchObject({ status: 'running', endpoint: '10.9.8.7' });
  });

  it('leaves idleSince unset when a session joined while it was starting', async () => {
    // Prepare
    const w = world();
    await w.useCases.sessions.assign(assignCommand('s1'));
    const { taskArn } = await stored(w.deps);

    // Act
    await w.useCases.taskEvents.handle(w.deps.runtime.change(taskArn!, { lastStatus: 'RUNNING' }));

    // Assess
    expect(await stored(w.deps)).toMatchObject({
      status: 'running',
      sessions: ['s1'],
      idleSince: null,
    });
  });

  it('changes nothing on a duplicate RUNNING', async () => {
    // Prepare
    const w = world();
    const running = await runningContainer(w);
    const before = snapshot(w);

    // Act
    const outcome = await w.useCases.taskEvents.handle(w.deps.runtime.eventFor(running.taskArn!));

    // Assess
    expect(outcome).toBe('ignored:stale');
    expect(snapshot(w)).toEqual(before);
  });

  it('keeps container.running in the outbox when the bus fails, and publishes it on the redelivery', async () => {
    // Prepare
    const w = world();
    const { container } = await w.useCases.containers.findOrStart(KEY);
    const event = w.deps.runtime.change(container.taskArn!, { lastStatus: 'RUNNING' });
    w.deps.publisher.failNext(1);
    expect(await w.useCases.taskEvents.handle(event)).toBe('running');
    expect(w.deps.publisher.ofType('container.running')).toHaveLength(0);
    expect((await stored(w.deps)).pendingEvents.map((e) => e.type)).toEqual(['container.running']);

    // Act
    await w.useCases.taskEvents.handle(event);

    // Assess
    expect(w.deps.publisher.ofType('container.running')).toHaveLength(1);
    const after = await stored(w.deps);
    expect(after.status).toBe('running');
    expect(after.pendingEvents).toEqual([]);
  });

  it('changes nothing when RUNNING arrives after STOPPED', async () => {
    // Prepare
    const w = world();
    const running = await runningContainer(w);
    const runningEvent = w.deps.runtime.eventFor(running.taskArn!);
    await w.useCases.containers.stop(CONTAINER_ID, stopReason('manual'));
    await w.useCases.taskEvents.handle(
      w.deps.runtime.change(running.taskArn!, { lastStatus: 'STOPPED' }),
    );
    const before = snapshot(w);

    // Act
    await w.useCases.taskEvents.handle(runningEvent);

    // Assess
    expect(snapshot(w)).toEqual(before);
    expect((await stored(w.deps)).status).toBe('stopped');
  });
});

describe('TaskEventHandler, STOPPED', () => {
  it('moves terminating → stopped with the record’s reason, deletes the queues, publishes', async () => {
    // Prepare
    const w = world();
    const running = await runningContainer(w);
    await w.useCases.containers.stop(CONTAINER_ID, stopReason('idle'));
    w.deps.clock.advance('10s');

    // Act
    const outcome = await w.useCases.taskEvents.handle(
      w.deps.runtime.change(running.taskArn!, { lastStatus: 'STOPPED', exitCode: 0 }),
    );

    // Assess
    expect(outcome).toBe('stopped');
    expect(await stored(w.deps)).toMatchObject({
      status: 'stopped',
      stopReason: 'idle',
      stoppedAt: w.deps.clock.iso(),
    });
    expect(w.deps.queues.has(running.inputQueueUrl!)).toBe(false);
    expect(w.deps.queues.has(running.outputQueueUrl!)).toBe(false);
    expect(w.deps.publisher.ofType('container.stopped')).toHaveLength(1);
  });

  it('takes the agent’s save_failed reason', async () => {
    // Prepare
    const w = world();
    const running = await runningContainer(w);
    await w.useCases.containers.stop(CONTAINER_ID, stopReason('idle'));

    // Act
    await w.useCases.taskEvents.handle(
      w.deps.runtime.change(running.taskArn!, {
        lastStatus: 'STOPPED',
        exitCode: 1,
        stoppedReason: 'save_failed:push rejected by origin',
      }),
    );

    // Assess
    expect(await stored(w.deps)).toMatchObject({
      status: 'stopped',
      stopReason: 'save_failed:push rejected by origin',
    });
  });

  it('calls a non-zero exit while terminating a failed save', async () => {
    // Prepare
    const w = world();
    const running = await runningContainer(w);
    await w.useCases.containers.stop(CONTAINER_ID, stopReason('idle'));

    // Act
    await w.useCases.taskEvents.handle(
      w.deps.runtime.change(running.taskArn!, { lastStatus: 'STOPPED', exitCode: 3 }),
    );

    // Assess
    expect((await stored(w.deps)).stopReason).toBe('save_failed:agent exited with code 3');
  });

  it('names a stop the runtime forced after the grace period', async () => {
    // Prepare
    const w = world();
    const running = await runningContainer(w);
    await w.useCases.containers.stop(CONTAINER_ID, stopReason('idle'));

    // Act
    await w.useCases.taskEvents.handle(
      w.deps.runtime.change(running.taskArn!, {
        lastStatus: 'STOPPED',
        exitCode: 137,
        stoppedReason: 'forced:killed by SIGKILL after the 60s grace period (idle)',
      }),
    );

    // Assess
    expect((await stored(w.deps)).stopReason).toMatch(/^forced:idle/);
  });

  it('does not mistake its own stop reason, echoed back, for a forced stop', async () => {
    // Prepare
    const w = world();
    const running = await runningContainer(w);
    await w.useCases.containers.stop(
      CONTAINER_ID,
      stopReason('manual', 'forced restart requested by the operator'),
    );

    // Act
    await w.useCases.taskEvents.handle(
      w.deps.runtime.change(running.taskArn!, { lastStatus: 'STOPPED', exitCode: 0 }),
    );

    // Assess
    expect((await stored(w.deps)).stopReason).toBe(
      'manual:forced restart requested by the operator',
    );
  });

  it('fails a running container whose task died (exit 137) as crashed and ends its sessions', async () => {
    // Prepare
    const w = world();
    const running = await runningContainer(w);
    await w.useCases.sessions.assign(assignCommand('s1'));
    await w.useCases.sessions.assign(assignCommand('s2'));

    // Act
    const outcome = await w.useCases.taskEvents.handle(
      w.deps.runtime.change(running.taskArn!, {
        lastStatus: 'STOPPED',
        exitCode: 137,
        stoppedReason: 'OutOfMemoryError',
      }),
    );

    // Assess
    expect(outcome).toBe('failed');
    const container = await stored(w.deps);
    expect(container).toMatchObject({ status: 'failed', sessions: [] });
    expect(container.stopReason).toMatch(/^crashed:exit code 137/);
    for (const id of ['s1', 's2']) {
      expect(await w.deps.store.getSession(id)).toMatchObject({ status: 'released' });
    }
    expect(w.deps.publisher.ofType('session.released')).toHaveLength(2);
    expect(w.deps.queues.has(running.inputQueueUrl!)).toBe(false);
  });

  it('announces the failed container as it ended up: without the sessions it released', async () => {
    // Prepare
    const w = world();
    const running = await runningContainer(w);
    await w.useCases.sessions.assign(assignCommand('s1'));

    // Act
    await w.useCases.taskEvents.handle(
      w.deps.runtime.change(running.taskArn!, {
        lastStatus: 'STOPPED',
        exitCode: 137,
        stoppedReason: 'killed by SIGKILL',
      }),
    );

    // Assess
    const [failed] = w.deps.publisher.ofType('container.failed');
    expect(failed?.payload.container).toMatchObject({
      status: 'failed',
      sessionCount: 0,
      sessions: [],
    });
    expect(w.deps.publisher.ofType('session.released')).toHaveLength(1);
  });

  it('stops (through terminating) a running container whose task was stopped outside berth after a clean save', async () => {
    // Prepare
    const w = world();
    const running = await runningContainer(w);
    const event = w.deps.runtime.change(running.taskArn!, {
      lastStatus: 'STOPPED',
      exitCode: 0,
      stoppedReason: 'runtime shutting down',
    });
    const outside: TaskStateChange = {
      ...event,
      detail: { ...event.detail, stopCode: 'UserInitiated' },
    };

    // Act
    const outcome = await w.useCases.taskEvents.handle(outside);

    // Assess
    expect(outcome).toBe('stopped');
    expect(await stored(w.deps)).toMatchObject({
      status: 'stopped',
      stopReason: 'manual:runtime shutting down',
    });
    expect(w.deps.publisher.types().slice(-2)).toEqual([
      'container.terminating',
      'container.stopped',
    ]);
  });

  it.each([
    [
      'says so (local runtime)',
      'save_failed:push: fatal: could not read from remote',
      'save_failed:push: fatal: could not read from remote',
    ],
    [
      'only exits 75 (ECS)',
      'Essential container in task exited',
      'save_failed:agent exited with code 75',
    ],
  ])(
    'stops a running container whose agent could not save after a SIGTERM and %s, as save_failed',
    async (_case, stoppedReason, expected) => {
      // Prepare
      const w = world();
      const running = await runningContainer(w);
      const event = w.deps.runtime.change(running.taskArn!, {
        lastStatus: 'STOPPED',
        exitCode: 75,
        stoppedReason,
      });
      const onItsOwn: TaskStateChange = {
        ...event,
        detail: { ...event.detail, stopCode: 'EssentialContainerExited' },
      };

      // Act
      const outcome = await w.useCases.taskEvents.handle(onItsOwn);

      // Assess
      expect(outcome).toBe('stopped');
      expect(await stored(w.deps)).toMatchObject({ status: 'stopped', stopReason: expected });
      const [terminating] = w.deps.publisher.ofType('container.terminating');
      expect(terminating?.payload.container).toMatchObject({ stopReason: expected });
      expect(w.deps.publisher.types()).not.toContain('container.failed');
    },
  );

  it('stops (through terminating) a running container whose agent saved and exited 0 on its own, e.g. after a SIGTERM', async () => {
    // Prepare
    const w = world();
    const running = await runningContainer(w);
    await w.useCases.sessions.assign(assignCommand('s1'));
    const event = w.deps.runtime.change(running.taskArn!, {
      lastStatus: 'STOPPED',
      exitCode: 0,
      stoppedReason: 'Essential container in task exited',
    });
    const onItsOwn: TaskStateChange = {
      ...event,
      detail: { ...event.detail, stopCode: 'EssentialContainerExited' },
    };

    // Act
    const outcome = await w.useCases.taskEvents.handle(onItsOwn);

    // Assess: a clean save is no crash
    expect(outcome).toBe('stopped');
    const container = await stored(w.deps);
    expect(container).toMatchObject({ status: 'stopped', sessions: [] });
    expect(container.stopReason).toBe(
      'manual:the agent saved and exited (EssentialContainerExited: Essential container in task exited)',
    );
    expect(w.deps.publisher.types()).not.toContain('container.failed');
    expect(await w.deps.store.getSession('s1')).toMatchObject({ status: 'released' });
  });

  it('fails a starting container whose task stopped as start_failed', async () => {
    // Prepare
    const w = world();
    const { container } = await w.useCases.containers.findOrStart(KEY);

    // Act
    await w.useCases.taskEvents.handle(
      w.deps.runtime.change(container.taskArn!, {
        lastStatus: 'STOPPED',
        exitCode: 1,
        stoppedReason: 'CannotPullContainerError',
      }),
    );

    // Assess
    expect((await stored(w.deps)).stopReason).toMatch(
      /^start_failed:exit code 1, CannotPullContainerError/,
    );
  });

  it('changes nothing on a duplicate STOPPED', async () => {
    // Prepare
    const w = world();
    const running = await runningContainer(w);
    await w.useCases.containers.stop(CONTAINER_ID, stopReason('idle'));
    const stoppedEvent = w.deps.runtime.change(running.taskArn!, {
      lastStatus: 'STOPPED',
      exitCode: 0,
    });
    await w.useCases.taskEvents.handle(stoppedEvent);
    const before = snapshot(w);

    // Act
    await w.useCases.taskEvents.handle(stoppedEvent);

    // Assess
    expect(snapshot(w)).toEqual(before);
  });

  it('ends the sessions on a redelivery when the first delivery failed after the write', async () => {
    // Prepare
    const w = world();
    const running = await runningContainer(w);
    await w.useCases.sessions.assign(assignCommand('s1'));
    const event = w.deps.runtime.change(running.taskArn!, { lastStatus: 'STOPPED', exitCode: 137 });
    w.deps.store.failNext('listSessionsByContainer');
    await expect(w.useCases.taskEvents.handle(event)).rejects.toThrow();
    expect((await stored(w.deps)).status).toBe('failed');

    // Act
    await w.useCases.taskEvents.handle(event);

    // Assess
    expect(await w.deps.store.getSession('s1')).toMatchObject({ status: 'released' });
    expect(w.deps.publisher.ofType('container.failed')).toHaveLength(1);
  });
});

describe('TaskEventHandler, events that are not for the current container', () => {
  it('changes nothing for an older generation’s STOPPED', async () => {
    // Prepare
    const w = world();
    const first = await runningContainer(w);
    await w.useCases.containers.fail(CONTAINER_ID, 1, stopReason('crashed', 'test'));
    const oldStopped = w.deps.runtime.change(first.taskArn!, { lastStatus: 'STOPPED' });
    await runningContainer(w);
    const before = snapshot(w);

    // Act
    const outcome = await w.useCases.taskEvents.handle(oldStopped);

    // Assess
    expect(outcome).toBe('ignored:stale');
    expect(snapshot(w)).toEqual(before);
  });

  it('stops an older generation’s RUNNING task as an orphan and changes nothing else', async () => {
    // Prepare
    const w = world();
    const first = await runningContainer(w);
    const lateRunning = w.deps.runtime.eventFor(first.taskArn!);
    await w.useCases.containers.fail(CONTAINER_ID, 1, stopReason('lost', 'test'));
    w.deps.runtime.change(first.taskArn!, { lastStatus: 'STOPPED', exitCode: 1 });
    await runningContainer(w);
    const before = snapshot(w);

    // Act: its RUNNING event arrives late, after generation 2 started
    const outcome = await w.useCases.taskEvents.handle(lateRunning);

    // Assess
    expect(outcome).toBe('orphan-stopped');
    expect(w.deps.runtime.stopCalls.map((c) => c.taskArn)).toEqual([first.taskArn]);
    expect(snapshot(w)).toEqual(before);
    expect((await stored(w.deps)).generation).toBe(2);
  });

  it.each<[string, (event: TaskStateChange) => TaskStateChange]>([
    ['no tags', (event) => ({ ...event, detail: { ...event.detail, tags: [] } })],
    [
      'another manager',
      (event) => ({
        ...event,
        detail: {
          ...event.detail,
          tags: event.detail.tags!.map((t) =>
            t.key === 'ManagedBy' ? { ...t, value: 'someone-else' } : t,
          ),
        },
      }),
    ],
    [
      'no generation',
      (event) => ({
        ...event,
        detail: { ...event.detail, tags: event.detail.tags!.filter((t) => t.key !== 'Generation') },
      }),
    ],
  ])('ignores an event with %s', async (_, rewrite) => {
    // Prepare
    const w = world();
    const { container } = await w.useCases.containers.findOrStart(KEY);
    const before = snapshot(w);

    // Act
    const outcome = await w.useCases.taskEvents.handle(
      rewrite(w.deps.runtime.change(container.taskArn!, { lastStatus: 'RUNNING' })),
    );

    // Assess
    expect(outcome).toBe('ignored:not-berth');
    expect(snapshot(w)).toEqual(before);
    expect(w.deps.runtime.stopCalls).toEqual([]);
  });

  it('stops a berth task whose container has no record at all', async () => {
    // Prepare
    const w = world();
    const task = w.deps.runtime.adopt({
      ...KEY,
      containerId: CONTAINER_ID,
      generation: 1,
      workspacePath: '/w',
      environment: {},
    });

    // Act
    const outcome = await w.useCases.taskEvents.handle(w.deps.runtime.eventFor(task.taskArn));

    // Assess
    expect(outcome).toBe('orphan-stopped');
    expect(w.deps.store.allContainers()).toEqual([]);
  });

  it('ignores intermediate statuses', async () => {
    // Prepare
    const w = world();
    const { container } = await w.useCases.containers.findOrStart(KEY);
    const before = snapshot(w);

    // Act
    const outcome = await w.useCases.taskEvents.handle(
      w.deps.runtime.change(container.taskArn!, { lastStatus: 'PROVISIONING' }),
    );

    // Assess
    expect(outcome).toBe('ignored:intermediate');
    expect(snapshot(w)).toEqual(before);
  });
});
