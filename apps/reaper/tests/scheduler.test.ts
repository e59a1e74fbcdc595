import { Scheduler } from '../src/scheduler.ts';

describe('Scheduler', () => {
  it('never runs two runs of one job at once, and stop waits for the run in progress', async () => {
    // Prepare
    const errors: unknown[] = [];
    const scheduler = new Scheduler({ error: (o) => errors.push(o) });
    let running = 0;
    let most = 0;
    let finished = 0;
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));

    // Act
    scheduler.every(
      'slow',
      5,
      async () => {
        running += 1;
        most = Math.max(most, running);
        await gate;
        running -= 1;
        finished += 1;
      },
      { runAtStart: true },
    );
    await new Promise((resolve) => setTimeout(resolve, 50));
    const stopped = scheduler.stop();
    release();
    await stopped;

    // Assess
    expect(most).toBe(1);
    expect(finished).toBe(1);
    expect(errors).toEqual([]);
  });

  it('logs a failing job and calls onError, and keeps scheduling it', async () => {
    const errors: unknown[] = [];
    let failures = 0;
    const scheduler = new Scheduler({ error: (o) => errors.push(o) }, () => (failures += 1));
    let runs = 0;
    await new Promise<void>((resolve) => {
      scheduler.every(
        'failing',
        5,
        () => {
          runs += 1;
          if (runs === 3) resolve();
          return Promise.reject(new Error('boom'));
        },
        { runAtStart: true },
      );
    });
    await scheduler.stop();
    expect(runs).toBeGreaterThanOrEqual(3);
    expect(failures).toBeGreaterThanOrEqual(2);
    expect(errors[0]).toMatchObject({ job: 'failing' });
  });
});
