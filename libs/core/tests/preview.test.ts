import { PREVIEW_TOUCH_INTERVAL_MS, stopReason, type ContainerRecord } from '@berth/domain';
import { CONTAINER_ID, KEY, runningContainer, stored, world } from './support.ts';

const IDLE_TIMEOUT = 20 * 60_000;

describe('PreviewService.touch (issue 19)', () => {
  it('writes previewActiveAt at most once per interval, then again once it has passed', async () => {
    // Prepare
    const w = world({ settings: { idleTimeoutMs: IDLE_TIMEOUT } });
    await runningContainer(w);
    const versionBefore = (await stored(w.deps)).version;

    // Act
    const first = await w.useCases.preview.touch(CONTAINER_ID);
    w.deps.clock.advance(PREVIEW_TOUCH_INTERVAL_MS - 1);
    const soon = await w.useCases.preview.touch(CONTAINER_ID);
    const afterSoon = await stored(w.deps);
    w.deps.clock.advance(1);
    const later = await w.useCases.preview.touch(CONTAINER_ID);

    // Assess
    expect([first, soon, later]).toEqual(['touched', 'recent', 'touched']);
    expect(afterSoon.version).toBe(versionBefore + 1);
    const after = await stored(w.deps);
    expect(after.version).toBe(versionBefore + 2);
    expect(after.previewActiveAt).toBe(w.deps.clock.iso());
    expect(after.lastActivityAt).toBe(w.deps.clock.iso());
  });

  it('touches every half idle timeout when that is shorter than the interval, so a preview keeps alive a short-timeout container', async () => {
    // Prepare: a 10 s idle timeout
    const w = world({ settings: { idleTimeoutMs: 10_000 } });
    await runningContainer(w);
    await w.useCases.preview.touch(CONTAINER_ID);

    // Act
    w.deps.clock.advance(4_999);
    const early = await w.useCases.preview.touch(CONTAINER_ID);
    w.deps.clock.advance(1);
    const due = await w.useCases.preview.touch(CONTAINER_ID);

    // Assess
    expect([early, due]).toEqual(['recent', 'touched']);
  });

  it('touches nothing that is not running', async () => {
    // Prepare
    const w = world();
    await w.useCases.containers.findOrStart(KEY);

    // Act
    const outcome = await w.useCases.preview.touch(CONTAINER_ID);
    const absent = await w.useCases.preview.touch('acme.web.nobody');

    // Assess
    expect(outcome).toBe('not_running');
    expect(absent).toBe('not_running');
    expect((await stored(w.deps)).previewActiveAt).toBeUndefined();
  });
});

describe('preview activity and the idle stop (issue 19)', () => {
  const json = (w: ReturnType<typeof world>, record: ContainerRecord) =>
    w.useCases.containers.json(record);

  it('keeps an idle container running while previewed (keptAliveBy preview) and lets it stop once the previews end', async () => {
    // Prepare: idle from its start, previewed 15 minutes in
    const w = world({ settings: { idleTimeoutMs: IDLE_TIMEOUT } });
    await runningContainer(w);
    w.deps.clock.advance('15m');
    await w.useCases.preview.touch(CONTAINER_ID);

    // Act: 21 minutes after its idle start, 6 after the preview
    w.deps.clock.advance('6m');
    const kept = await w.useCases.reaper.stopIdle();
    const whileKept = json(w, await stored(w.deps));
    // ... and 20 minutes after the last preview
    w.deps.clock.advance('14m');
    const stopped = await w.useCases.reaper.stopIdle();

    // Assess
    expect(kept.stopped).toBe(0);
    expect(whileKept.status).toBe('running');
    expect(whileKept.keptAliveBy).toEqual(['preview']);
    expect(whileKept.idleStopAt).toBe(
      new Date(Date.parse(whileKept.previewActiveAt ?? '') + IDLE_TIMEOUT).toISOString(),
    );
    expect(stopped.stopped).toBe(1);
    const end = await stored(w.deps);
    expect(end.status).toBe('terminating');
    expect(end.stopReason).toMatch(/^idle/);
    expect(json(w, end).keptAliveBy).toEqual([]);
  });

  it('stops an idle container that nobody previews at its usual time', async () => {
    // Prepare
    const w = world({ settings: { idleTimeoutMs: IDLE_TIMEOUT } });
    await runningContainer(w);

    // Act
    w.deps.clock.advance('20m');
    const result = await w.useCases.reaper.stopIdle();

    // Assess
    expect(result.stopped).toBe(1);
  });
});

describe('PreviewService.open (issue 19)', () => {
  it('starts a stopped container as a discover would (a new generation), and finds a live one', async () => {
    // Prepare
    const w = world();
    const first = await runningContainer(w);
    await w.useCases.containers.stop(CONTAINER_ID, stopReason('manual'));
    if (!first.taskArn) throw new Error('no task');
    await w.useCases.taskEvents.handle(
      w.deps.runtime.change(first.taskArn, { lastStatus: 'STOPPED', exitCode: 0 }),
    );

    // Act
    const opened = await w.useCases.preview.open(CONTAINER_ID);
    const again = await w.useCases.preview.open(CONTAINER_ID);

    // Assess
    expect(opened.source).toBe('created');
    expect(opened.container.generation).toBe(first.generation + 1);
    expect(again.source).toBe('store');
  });
});
