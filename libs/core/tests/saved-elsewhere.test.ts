import { stopReason } from '@berth/domain';
/**
 * Work the agent could not put on its branch (the remote moved and the two do not merge) is
 * on fallback refs: the stop is not a failed save, and its event says where the work went.
 */
import { CONTAINER_ID, runningContainer, stored, world } from './support.ts';

const PREFIX = `refs/berth/conflicts/${CONTAINER_ID}/1/`;

describe('TaskEventHandler, STOPPED with work saved to fallback refs (issue 12, case 4)', () => {
  it('keeps the stop’s own reason and publishes the fallback refs in container.stopped', async () => {
    // Prepare
    const w = world();
    const running = await runningContainer(w);
    await w.useCases.containers.stop(CONTAINER_ID, stopReason('idle'));

    // Act
    const outcome = await w.useCases.taskEvents.handle(
      w.deps.runtime.change(running.taskArn!, {
        lastStatus: 'STOPPED',
        exitCode: 0,
        stoppedReason: `saved_elsewhere:${PREFIX} thread/graceful workspace/john +2 more`,
      }),
    );

    // Assess
    expect(outcome).toBe('stopped');
    expect((await stored(w.deps)).stopReason).toBe('idle');
    const [event] = w.deps.publisher.ofType('container.stopped');
    expect(event?.payload.savedElsewhere).toEqual({
      refPrefix: PREFIX,
      branches: ['thread/graceful', 'workspace/john'],
      refs: [`${PREFIX}thread/graceful`, `${PREFIX}workspace/john`],
      complete: false,
    });
  });

  it('publishes the fallback refs when the task was stopped outside berth', async () => {
    // Prepare
    const w = world();
    const running = await runningContainer(w);

    // Act
    await w.useCases.taskEvents.handle(
      w.deps.runtime.change(running.taskArn!, {
        lastStatus: 'STOPPED',
        exitCode: 0,
        stopCode: 'UserInitiated',
        stoppedReason: `saved_elsewhere:${PREFIX} thread/a`,
      }),
    );

    // Assess
    expect((await stored(w.deps)).status).toBe('stopped');
    const [event] = w.deps.publisher.ofType('container.stopped');
    expect(event?.payload.savedElsewhere).toEqual({
      refPrefix: PREFIX,
      branches: ['thread/a'],
      refs: [`${PREFIX}thread/a`],
      complete: true,
    });
  });

  it('publishes no savedElsewhere on an ordinary stop', async () => {
    const w = world();
    const running = await runningContainer(w);
    await w.useCases.containers.stop(CONTAINER_ID, stopReason('idle'));

    await w.useCases.taskEvents.handle(
      w.deps.runtime.change(running.taskArn!, { lastStatus: 'STOPPED', exitCode: 0 }),
    );

    const [event] = w.deps.publisher.ofType('container.stopped');
    expect(event?.payload).not.toHaveProperty('savedElsewhere');
  });
});
