import { UnavailableError, stopReason } from '@berth/domain';
import { CONTAINER_ID, KEY, runningContainer, stored, world } from './support.ts';

describe('the outbox across generations', () => {
  it('keeps the events a final generation left in its outbox when the next generation replaces the record', async () => {
    // Prepare: generation 1 stops, and the bus is down when its container.stopped should go out
    // and still down when the next request reads the record
    const w = world();
    const running = await runningContainer(w);
    await w.useCases.containers.stop(CONTAINER_ID, stopReason('manual'));
    w.deps.publisher.failNext(2);
    // The task event is left for redelivery (its handling fails while the event is unpublished).
    await expect(
      w.useCases.taskEvents.handle(
        w.deps.runtime.change(running.taskArn!, { lastStatus: 'STOPPED', exitCode: 0 }),
      ),
    ).rejects.toBeInstanceOf(UnavailableError);
    expect(
      (await stored(w.deps)).pendingEvents.map(
        (e) =>
          `${e.type}#${String(e.payload.container && (e.payload.container as { generation: number }).generation)}`,
      ),
    ).toEqual(['container.stopped#1']);

    // Act: the next request starts generation 2 (the soak test met this after a task watcher
    // failed to publish while SQS refused connections)
    const next = await w.useCases.containers.findOrStart(KEY);

    // Assess: generation 1's container.stopped went out after all, once
    expect(next.container.generation).toBe(2);
    expect(
      w.deps.publisher.events.filter((e) => e.eventId === `${CONTAINER_ID}#1/container.stopped`),
    ).toHaveLength(1);
    expect((await stored(w.deps)).pendingEvents).toEqual([]);
  });
});
