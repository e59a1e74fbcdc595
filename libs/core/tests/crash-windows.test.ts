/**
 * Issue 12: what holds when a process dies or a call fails between two particular steps.
 * Each test names the window it opens; the fakes fail or stop exactly there.
 */
import { newContainerRecord, type ContainerRecord } from '@berth/domain';
import { CONTAINER_ID, KEY, stored, world, type World } from './support.ts';

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
    await w.lifecycle.containers.stop(CONTAINER_ID, 'manual', 'operator');
    w.deps.clock.advance('5m');

    // Act
    const report = await w.lifecycle.reaper.sweep();

    // Assess
    expect(report.startTimedOut).toBe(1);
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
    await w.lifecycle.containers.stop(CONTAINER_ID, 'manual');
    w.deps.clock.advance('2m');

    // Act
    const found = await w.lifecycle.containers.findOrStart(KEY);

    // Assess
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
    await w.lifecycle.containers.stop(CONTAINER_ID, 'manual');
    w.deps.clock.advance('5m');

    // Act
    await w.lifecycle.reaper.sweep();
    const meanwhile = await stored(w.deps);
    const discover = w.lifecycle.containers.findOrStart(KEY);
    await expect(discover).rejects.toMatchObject({ code: 'conflict' });
    await w.lifecycle.taskEvents.handle(
      w.deps.runtime.change(task.taskArn, { lastStatus: 'STOPPED', exitCode: 0 }),
    );

    // Assess
    expect(meanwhile).toMatchObject({ status: 'starting', taskArn: task.taskArn });
    expect(w.deps.runtime.stopCalls).toEqual([{ taskArn: task.taskArn, reason: 'manual' }]);
    expect(await stored(w.deps)).toMatchObject({ status: 'failed', stopReason: 'manual' });
    expect(w.deps.runtime.liveTasks()).toEqual([]);
  });
});
