/**
 * The command path's length: how many rounds of calls, one after another, an assign and a
 * release of a running container need. Calls that do not depend on each other are made at
 * once, so they share a round.
 */
import { jest } from '@jest/globals';
import { CONTAINER_ID, assignCommand, releaseCommand, runningContainer, world } from './support.ts';

/** Wraps methods so that every call is logged with how many of the wrapped calls overlapped it. */
function rounds(targets: [object, string[]][]) {
  let inFlight = 0;
  let round = 0;
  const calls: { name: string; round: number }[] = [];
  for (const [target, methods] of targets) {
    for (const method of methods) {
      const original = (target as Record<string, (...args: unknown[]) => Promise<unknown>>)[
        method
      ]!.bind(target);
      jest
        .spyOn(target as Record<string, (...args: unknown[]) => Promise<unknown>>, method)
        .mockImplementation(async (...args: unknown[]) => {
          // A call that starts while none is in flight opens a new round.
          if (inFlight === 0) round += 1;
          inFlight += 1;
          calls.push({ name: method, round });
          try {
            return await original(...args);
          } finally {
            inFlight -= 1;
          }
        });
    }
  }
  return calls;
}

describe('the command path', () => {
  it('assigns a session to a running container in three rounds: both reads, the transaction, then thread.open and the event', async () => {
    // Prepare
    const w = world();
    await runningContainer(w);
    const calls = rounds([
      [w.deps.store, ['getSession', 'getContainer', 'write']],
      [w.deps.queues, ['send', 'exists', 'messagesInFlight']],
      [w.deps.publisher, ['publish']],
      [w.deps.runtime, ['describeTask', 'listTasks']],
    ]);

    // Act
    const outcome = await w.useCases.sessions.assign(assignCommand('s1'));

    // Assess
    expect(outcome.kind).toBe('assigned');
    expect(calls).toEqual([
      { name: 'getSession', round: 1 },
      { name: 'getContainer', round: 1 },
      { name: 'write', round: 2 },
      { name: 'send', round: 3 },
      { name: 'publish', round: 3 },
    ]);
  });

  it('releases the last session in four rounds: session, container, the transaction, then both events at once and the outbox cleared without a read', async () => {
    // Prepare
    const w = world();
    await runningContainer(w);
    await w.useCases.sessions.assign(assignCommand('s1'));
    const calls = rounds([
      [w.deps.store, ['getSession', 'getContainer', 'write']],
      [w.deps.publisher, ['publish']],
    ]);

    // Act
    await w.useCases.sessions.release(releaseCommand('s1'));

    // Assess
    expect(calls.slice(0, 5)).toEqual([
      { name: 'getSession', round: 1 },
      { name: 'getContainer', round: 2 },
      { name: 'write', round: 3 },
      { name: 'publish', round: 4 },
      { name: 'publish', round: 4 },
    ]);
    // Clearing the outbox after its publish: one conditional write of the container as the
    // transaction wrote it, no read.
    expect(calls.slice(5).map((call) => call.name)).toEqual(['write']);
    expect(w.deps.publisher.types().slice(-2).sort()).toEqual([
      'container.idle',
      'session.released',
    ]);
    expect((await w.deps.store.getContainer(CONTAINER_ID))?.pendingEvents).toEqual([]);
  });
});
