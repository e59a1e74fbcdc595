import { jest } from '@jest/globals';
import {
  ConflictError,
  NotFoundError,
  UnavailableError,
  newContainerRecord,
  type ContainerRecord,
  stopReason,
} from '@berth/domain';
import {
  CONTAINER_ID,
  KEY,
  concurrently,
  runningContainer,
  settle,
  stored,
  world,
} from './support.ts';

describe('ContainerService.findOrStart, first request', () => {
  it('creates generation 1 with its record, queues and task, and publishes container.created', async () => {
    // Prepare
    const { deps, useCases } = world({
      settings: { agentEnvironment: { BERTH_WORKLOAD_COMMAND: 'cat' } },
    });

    // Act
    const found = await useCases.containers.findOrStart(KEY, { commandId: 'cmd-1' });

    // Assess
    expect(found.source).toBe('created');
    const record = await stored(deps);
    expect(record).toMatchObject({
      containerId: CONTAINER_ID,
      ...KEY,
      status: 'starting',
      generation: 1,
      sessions: [],
      workspacePath: '/workspaces/acme.web.john',
    });
    expect(found.container).toEqual(record);
    expect(record.inputQueueUrl).not.toBeNull();
    expect(deps.queues.has(record.inputQueueUrl!)).toBe(true);
    expect(deps.queues.has(record.outputQueueUrl!)).toBe(true);

    const [task] = deps.runtime.tasks();
    expect(deps.runtime.tasks()).toHaveLength(1);
    expect(record.taskArn).toBe(task!.taskArn);
    expect(task!.spec).toMatchObject({ containerId: CONTAINER_ID, generation: 1, ...KEY });
    expect(task!.spec.environment).toMatchObject({
      CONTAINER_ID: CONTAINER_ID,
      WORKSPACE_PATH: '/workspaces/acme.web.john',
      BERTH_INPUT_QUEUE_URL: record.inputQueueUrl,
      BERTH_OUTPUT_QUEUE_URL: record.outputQueueUrl,
      BERTH_WORKLOAD_COMMAND: 'cat',
    });

    expect(deps.publisher.types()).toEqual(['container.created']);
    expect(deps.publisher.events[0]).toMatchObject({
      eventId: 'acme.web.john#1/container.created',
      containerId: CONTAINER_ID,
      commandId: 'cmd-1',
      payload: { container: { containerId: CONTAINER_ID, generation: 1, status: 'starting' } },
    });
  });

  it('passes the repository URL when settings know one', async () => {
    // Prepare
    const { deps, useCases } = world({
      settings: { repoUrlFor: (key) => `file:///repos/${key.clientId}/${key.projectId}.git` },
    });

    // Act
    await useCases.containers.findOrStart(KEY);

    // Assess
    expect(deps.runtime.tasks()[0]!.spec.environment.BERTH_REPO_URL).toBe(
      'file:///repos/acme/web.git',
    );
  });
});

describe('ContainerService.findOrStart, later requests', () => {
  it('finds a starting container again in the store without starting another', async () => {
    // Prepare
    const { deps, useCases } = world();
    const first = await useCases.containers.findOrStart(KEY);

    // Act
    const again = await useCases.containers.findOrStart(KEY);

    // Assess
    expect(again).toEqual({ container: first.container, source: 'store' });
    expect(deps.runtime.startCalls).toHaveLength(1);
  });

  it('finds a running container again in the store', async () => {
    // Prepare
    const w = world();
    const running = await runningContainer(w);

    // Act
    const again = await w.useCases.containers.findOrStart(KEY);

    // Assess
    expect(again).toEqual({ container: running, source: 'store' });
    expect(w.deps.runtime.startCalls).toHaveLength(1);
  });

  it('answers a running record from one store read, without asking the runtime or the queues', async () => {
    // Prepare
    const w = world();
    const running = await runningContainer(w);
    const reads = jest.spyOn(w.deps.store, 'getContainer');
    const described = jest.spyOn(w.deps.runtime, 'describeTask');
    const listed = jest.spyOn(w.deps.runtime, 'listTasks');
    const probed = jest.spyOn(w.deps.queues, 'exists');
    const inFlight = jest.spyOn(w.deps.queues, 'messagesInFlight');

    // Act
    const again = await w.useCases.containers.findOrStart(KEY);

    // Assess
    expect(again).toEqual({ container: running, source: 'store' });
    expect(reads).toHaveBeenCalledTimes(1);
    expect(described).not.toHaveBeenCalled();
    expect(listed).not.toHaveBeenCalled();
    expect(probed).not.toHaveBeenCalled();
    expect(inFlight).not.toHaveBeenCalled();
  });

  it('a record whose task vanished is closed (lost) by reconciliation, and the next request starts generation 2', async () => {
    // Prepare
    const w = world();
    const running = await runningContainer(w);
    w.deps.runtime.vanish(running.taskArn!);
    await w.useCases.reaper.reconcile();

    // Act
    const found = await w.useCases.containers.findOrStart(KEY);

    // Assess
    expect(found.source).toBe('created');
    expect(found.container.generation).toBe(2);
    const failed = w.deps.publisher.ofType('container.failed');
    expect(failed).toHaveLength(1);
    expect(failed[0]!.payload).toMatchObject({
      container: {
        generation: 1,
        status: 'failed',
        stopReason: expect.stringMatching(/^lost:/) as unknown,
      },
    });
    expect(w.deps.queues.has(running.inputQueueUrl!)).toBe(false);
  });

  it('a record whose task stopped is failed by its task event, and the next request starts generation 2', async () => {
    // Prepare
    const w = world();
    const running = await runningContainer(w);
    await w.useCases.taskEvents.handle(
      w.deps.runtime.change(running.taskArn!, { lastStatus: 'STOPPED', exitCode: 137 }),
    );

    // Act
    const found = await w.useCases.containers.findOrStart(KEY);

    // Assess
    expect(found).toMatchObject({
      source: 'created',
      container: { generation: 2, status: 'starting' },
    });
    expect(found.container.inputQueueUrl).not.toBe(running.inputQueueUrl);
    expect(w.deps.publisher.ofType('container.failed')[0]!.payload).toMatchObject({
      container: { generation: 1, stopReason: expect.stringMatching(/^crashed:/) as unknown },
    });
  });

  it('refuses while the container is terminating, with a retryable ConflictError', async () => {
    // Prepare
    const w = world();
    await runningContainer(w);
    await w.useCases.containers.stop(CONTAINER_ID, stopReason('manual'));

    // Act
    const { error } = await settle(w.useCases.containers.findOrStart(KEY));

    // Assess
    expect(error).toBeInstanceOf(ConflictError);
    expect((error as ConflictError).retryable).toBe(true);
    expect(w.deps.runtime.startCalls).toHaveLength(1);
  });

  it('starts generation + 1 after a stopped one, with new queues, never reusing it', async () => {
    // Prepare
    const w = world();
    const first = await runningContainer(w);
    await w.useCases.containers.stop(CONTAINER_ID, stopReason('manual'));
    await w.useCases.taskEvents.handle(
      w.deps.runtime.change(first.taskArn!, { lastStatus: 'STOPPED', exitCode: 0 }),
    );
    expect((await stored(w.deps)).status).toBe('stopped');

    // Act
    const found = await w.useCases.containers.findOrStart(KEY);

    // Assess
    expect(found).toMatchObject({
      source: 'created',
      container: { generation: 2, status: 'starting' },
    });
    expect(found.container.taskArn).not.toBe(first.taskArn);
    expect(found.container.inputQueueUrl).not.toBe(first.inputQueueUrl);
    expect(w.deps.queues.has(first.inputQueueUrl!)).toBe(false);
  });

  it('starts generation + 1 after a failed one', async () => {
    // Prepare
    const w = world();
    const first = await runningContainer(w);
    w.deps.runtime.change(first.taskArn!, { lastStatus: 'STOPPED', exitCode: 1 });
    await w.useCases.containers.fail(CONTAINER_ID, first.generation, stopReason('crashed', 'test'));

    // Act
    const found = await w.useCases.containers.findOrStart(KEY);

    // Assess
    expect(found.container.generation).toBe(2);
  });

  it('starts no generation + 1 while the failed generation’s task still runs (issue 12, case 9)', async () => {
    // Prepare: closed as lost, but its task has not ended
    const w = world();
    const first = await runningContainer(w);
    await w.useCases.containers.fail(CONTAINER_ID, first.generation, stopReason('lost', 'test'));

    // Act
    const outcome = await settle(w.useCases.containers.findOrStart(KEY));

    // Assess
    expect(outcome.error).toMatchObject({ code: 'conflict', retryable: true });
    expect(w.deps.runtime.liveTasks().map((t) => t.generation)).toEqual([1]);
    expect((await stored(w.deps)).generation).toBe(1);
  });
});

describe('ContainerService.findOrStart under concurrency', () => {
  it('starts exactly one task for 20 concurrent requests, and all name the same generation', async () => {
    // Prepare
    const { deps, useCases } = world();

    // Act
    const answers = await concurrently(20, () => useCases.containers.findOrStart(KEY));

    // Assess
    expect(deps.runtime.startCalls).toHaveLength(1);
    expect(deps.runtime.tasks()).toHaveLength(1);
    expect(deps.queues.created).toHaveLength(1);
    expect(answers.filter((a) => a.source === 'created')).toHaveLength(1);
    const record = await stored(deps);
    for (const { container } of answers) {
      expect(container).toMatchObject({
        containerId: CONTAINER_ID,
        generation: 1,
        taskArn: record.taskArn,
        inputQueueUrl: record.inputQueueUrl,
      });
    }
    expect(deps.publisher.ofType('container.created')).toHaveLength(1);
  });

  it('starts exactly one next generation for 20 concurrent requests after a stop', async () => {
    // Prepare
    const w = world();
    const first = await runningContainer(w);
    await w.useCases.containers.stop(CONTAINER_ID, stopReason('idle'));
    await w.useCases.taskEvents.handle(
      w.deps.runtime.change(first.taskArn!, { lastStatus: 'STOPPED' }),
    );

    // Act
    const answers = await concurrently(20, () => w.useCases.containers.findOrStart(KEY));

    // Assess
    expect(new Set(answers.map((a) => a.container.generation))).toEqual(new Set([2]));
    expect(w.deps.runtime.startCalls).toHaveLength(2);
  });
});

describe('ContainerService.findOrStart when the start fails', () => {
  it('records failed with start_failed, deletes the queues and answers UnavailableError', async () => {
    // Prepare
    const { deps, useCases } = world();
    deps.runtime.failNext('startTask', new UnavailableError('no capacity in the cluster'));

    // Act
    const { error } = await settle(useCases.containers.findOrStart(KEY));

    // Assess
    expect(error).toBeInstanceOf(UnavailableError);
    expect((error as UnavailableError).retryable).toBe(true);
    const record = await stored(deps);
    expect(record.status).toBe('failed');
    expect(record.stopReason).toMatch(/^start_failed:.*no capacity in the cluster/);
    expect(deps.queues.deleted).toHaveLength(1);
    const [deleted] = deps.queues.deleted;
    expect(deps.queues.has(deleted!.inputQueueUrl)).toBe(false);
    expect(deps.queues.has(deleted!.outputQueueUrl)).toBe(false);
    expect(deps.publisher.types()).toEqual(['container.failed']);
  });

  it('lets the retry start generation 2', async () => {
    // Prepare
    const { deps, useCases } = world();
    deps.runtime.failNext('startTask');
    await settle(useCases.containers.findOrStart(KEY));

    // Act
    const found = await useCases.containers.findOrStart(KEY);

    // Assess
    expect(found.container).toMatchObject({ generation: 2, status: 'starting' });
  });

  it('answers every concurrent waiter with UnavailableError instead of starting again', async () => {
    // Prepare
    const { deps, useCases } = world();
    deps.runtime.failNext('startTask');

    // Act
    const outcomes = await concurrently(5, () => settle(useCases.containers.findOrStart(KEY)));

    // Assess
    for (const { error } of outcomes) expect(error).toBeInstanceOf(UnavailableError);
    expect(deps.runtime.startCalls).toHaveLength(1);
    expect((await stored(deps)).generation).toBe(1);
  });

  it('does not fail a started container when only publishing container.created fails: the event waits in the outbox', async () => {
    // Prepare
    const { deps, useCases } = world();
    deps.publisher.failNext(1);

    // Act
    const first = await useCases.containers.findOrStart(KEY);
    const pending = (await stored(deps)).pendingEvents.map((e) => e.type);
    const retry = await useCases.containers.findOrStart(KEY);

    // Assess
    expect(first).toMatchObject({
      source: 'created',
      container: { generation: 1, status: 'starting' },
    });
    expect(pending).toEqual(['container.created']);
    expect(retry).toMatchObject({
      source: 'store',
      container: { generation: 1, status: 'starting' },
    });
    expect(deps.publisher.ofType('container.created')).toHaveLength(1);
    expect((await stored(deps)).pendingEvents).toEqual([]);
    expect(deps.runtime.liveTasks()).toHaveLength(1);
  });
});

describe('ContainerService.stop', () => {
  it('moves a running container to terminating, publishes it and asks the task to stop', async () => {
    // Prepare
    const w = world();
    const running = await runningContainer(w);

    // Act
    const result = await w.useCases.containers.stop(
      CONTAINER_ID,
      stopReason('manual', 'maintenance'),
      {
        commandId: 'c-stop',
      },
    );

    // Assess
    expect(result).toMatchObject({ status: 'terminating', stopReason: 'manual:maintenance' });
    expect(result.terminatingSince).toBe(w.deps.clock.iso());
    expect(w.deps.runtime.stopCalls).toEqual([
      { taskArn: running.taskArn, reason: 'manual:maintenance' },
    ]);
    expect(w.deps.publisher.ofType('container.terminating')[0]).toMatchObject({
      commandId: 'c-stop',
    });
  });

  it('changes nothing when stopping twice', async () => {
    // Prepare
    const w = world();
    await runningContainer(w);
    await w.useCases.containers.stop(CONTAINER_ID, stopReason('manual'));
    const before = await stored(w.deps);
    const published = w.deps.publisher.events.length;

    // Act
    const again = await w.useCases.containers.stop(CONTAINER_ID, stopReason('idle'));

    // Assess
    expect(again).toEqual(before);
    expect(w.deps.publisher.events).toHaveLength(published);
    expect(w.deps.runtime.stopCalls).toHaveLength(1);
  });

  it('records a stop of a starting container and stops its task; the container fails only once the task has ended', async () => {
    // Prepare
    const { deps, useCases } = world();
    const { container } = await useCases.containers.findOrStart(KEY);

    // Act
    const result = await useCases.containers.stop(CONTAINER_ID, stopReason('manual'));
    const meanwhile = await settle(useCases.containers.findOrStart(KEY));
    const outcome = await useCases.taskEvents.handle(
      deps.runtime.change(container.taskArn!, { lastStatus: 'STOPPED', exitCode: 0 }),
    );

    // Assess
    expect(result).toMatchObject({ status: 'starting', stopReason: 'manual' });
    expect(deps.runtime.stopCalls).toEqual([{ taskArn: container.taskArn, reason: 'manual' }]);
    // No second generation may start on the workspace while the first task still runs.
    expect(meanwhile.error).toBeInstanceOf(ConflictError);
    expect(outcome).toBe('failed');
    expect(await stored(deps)).toMatchObject({
      status: 'failed',
      stopReason: 'manual',
      generation: 1,
    });
    expect(deps.publisher.types()).toEqual(['container.created', 'container.failed']);
    expect(deps.queues.deleted).toHaveLength(1);
  });

  it('terminates a container stopped while starting as soon as it runs', async () => {
    // Prepare
    const { deps, useCases } = world();
    const { container } = await useCases.containers.findOrStart(KEY);
    await useCases.containers.stop(CONTAINER_ID, stopReason('manual', 'changed my mind'));

    // Act
    await useCases.taskEvents.handle(
      deps.runtime.change(container.taskArn!, { lastStatus: 'RUNNING' }),
    );

    // Assess
    expect(await stored(deps)).toMatchObject({
      status: 'terminating',
      stopReason: 'manual:changed my mind',
    });
    expect(deps.publisher.types()).toEqual([
      'container.created',
      'container.running',
      'container.terminating',
    ]);
  });

  it('stops the task of a container stopped while it was being provisioned, and keeps it starting until that task ends', async () => {
    // Prepare
    const { deps, useCases } = world();
    const startTask = deps.runtime.startTask.bind(deps.runtime);
    jest.spyOn(deps.runtime, 'startTask').mockImplementationOnce(async (spec) => {
      const task = await startTask(spec);
      await useCases.containers.stop(CONTAINER_ID, stopReason('manual'));
      return task;
    });

    // Act
    const { error } = await settle(useCases.containers.findOrStart(KEY));

    // Assess
    expect(error).toBeInstanceOf(ConflictError);
    expect(await stored(deps)).toMatchObject({ status: 'starting', stopReason: 'manual' });
    const [task] = deps.runtime.tasks();
    expect(deps.runtime.stopCalls).toEqual([{ taskArn: task!.taskArn, reason: 'manual' }]);
    expect(deps.queues.created).toHaveLength(1);
    expect(deps.publisher.types()).toEqual(['container.created']);
  });

  it('answers NotFoundError for a container that does not exist', async () => {
    const { useCases } = world();
    await expect(
      useCases.containers.stop('no.such.container', stopReason('manual')),
    ).rejects.toBeInstanceOf(NotFoundError);
  });
});

describe('ContainerRecords.update', () => {
  it('re-reads and decides again when the record changed in between', async () => {
    // Prepare
    const w = world();
    await runningContainer(w);
    const seen: number[] = [];
    let interfered = false;

    // Act
    await w.useCases.records.update(CONTAINER_ID, (current): ContainerRecord => {
      seen.push(current.version);
      if (!interfered) {
        interfered = true;
        w.deps.store.seed({ containers: [{ ...current, version: current.version + 1 }] });
      }
      return { ...current, endpoint: 'changed' };
    });

    // Assess
    expect(seen).toEqual([seen[0], seen[0]! + 1]);
    expect(await stored(w.deps)).toMatchObject({ endpoint: 'changed', version: seen[0]! + 2 });
  });
});

describe('ContainerService.findOrStart after a starter died', () => {
  it('stops what its abandoned start may have left through the start token, fails it once that task ended, then starts the next generation', async () => {
    // Prepare
    const { deps, useCases } = world();
    const now = deps.clock.iso();
    await deps.store.write({
      containers: [
        {
          record: {
            ...newContainerRecord({ ...KEY, containerId: CONTAINER_ID }, 1, now),
            workspacePath: '/w',
          },
          expect: { kind: 'new-generation', previousGeneration: null },
        },
      ],
    });
    deps.clock.advance('2m');

    // Act: the first discover adopts (or starts) generation 1's task by its token and stops it;
    // the next one, after that task's end, starts generation 2.
    const whileItStops = await useCases.containers.findOrStart(KEY).then(
      () => undefined,
      (error: unknown) => error,
    );
    const [task] = deps.runtime.liveTasks();
    await useCases.taskEvents.handle(
      deps.runtime.change(task!.taskArn, { lastStatus: 'STOPPED', exitCode: 0 }),
    );
    const found = await useCases.containers.findOrStart(KEY);

    // Assess
    expect(whileItStops).toMatchObject({ code: 'conflict' });
    expect(deps.runtime.stopCalls.map((c) => c.taskArn)).toEqual([task!.taskArn]);
    expect(found).toMatchObject({ source: 'created', container: { generation: 2 } });
    expect(deps.publisher.ofType('container.failed')[0]?.payload.container).toMatchObject({
      generation: 1,
      stopReason: 'start_failed:its starter vanished before provisioning',
    });
  });
});

describe('ContainerService reads for the API', () => {
  it('answers NotFoundError for a container that does not exist, and for its sessions', async () => {
    // Prepare
    const { useCases } = world();

    // Act
    const read = settle(useCases.containers.get('no.such.container'));
    const sessions = settle(useCases.sessions.ofContainer('no.such.container'));

    // Assess
    expect((await read).error).toBeInstanceOf(NotFoundError);
    expect((await sessions).error).toBeInstanceOf(NotFoundError);
  });

  it('waits for a starting container to settle, and returns it as the store has it then', async () => {
    // Prepare
    const w = world();
    const { container } = await w.useCases.containers.findOrStart(KEY);
    expect(container.status).toBe('starting');
    const settled = w.useCases.containers.awaitSettled(container, 5_000, 5);

    // Act: the task comes up while the caller waits.
    await w.useCases.taskEvents.handle(
      w.deps.runtime.change(container.taskArn ?? '', { lastStatus: 'RUNNING' }),
    );

    // Assess
    expect(await settled).toMatchObject({ status: 'running', generation: container.generation });
  });

  it('stops waiting when the wait is over, with the container still starting', async () => {
    // Prepare
    const w = world();
    const { container } = await w.useCases.containers.findOrStart(KEY);

    // Act
    const settled = await w.useCases.containers.awaitSettled(container, 20, 5);

    // Assess
    expect(settled.status).toBe('starting');
  });
});
