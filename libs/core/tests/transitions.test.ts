/**
 * Every status change any use case stores is one the domain's transition table allows, and a
 * new generation only ever replaces a final one. Random sequences of the use cases (starts,
 * stops, task events of every kind, session commands, reaper passes with time moving on) run
 * over the fakes, and every container write the store accepts is checked against the table.
 */
import fc from 'fast-check';
import { InMemoryStateStore } from '@berth/testing';
import {
  CONTAINER_STATUSES,
  TRANSITIONS,
  canTransition,
  isLive,
  type ContainerStatus,
  stopReason,
} from '@berth/domain';
import {
  CONTAINER_ID,
  KEY,
  assignCommand,
  releaseCommand,
  settle,
  world,
  type World,
} from './support.ts';

interface Change {
  from: { status: ContainerStatus; generation: number } | undefined;
  to: { status: ContainerStatus; generation: number };
}

/** The fake store, noting the status each accepted container write moved from and to. */
class TransitionRecordingStore extends InMemoryStateStore {
  readonly changes: Change[] = [];

  override async write(change: Parameters<InMemoryStateStore['write']>[0]): Promise<void> {
    const before = new Map(this.allContainers().map((record) => [record.containerId, record]));
    await super.write(change);
    for (const { record } of change.containers ?? []) {
      const previous = before.get(record.containerId);
      this.changes.push({
        from: previous && { status: previous.status, generation: previous.generation },
        to: { status: record.status, generation: record.generation },
      });
    }
  }
}

type Step =
  | { kind: 'start' }
  | { kind: 'stop' }
  | { kind: 'task'; lastStatus: 'RUNNING' | 'STOPPED'; exitCode?: number; stoppedReason?: string }
  | { kind: 'assign'; sessionId: string }
  | { kind: 'release'; sessionId: string }
  | { kind: 'reap'; advance: string };

const step: fc.Arbitrary<Step> = fc.oneof(
  fc.constant<Step>({ kind: 'start' }),
  fc.constant<Step>({ kind: 'stop' }),
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('task' as const),
      lastStatus: fc.constantFrom('RUNNING' as const, 'STOPPED' as const),
      exitCode: fc.option(fc.constantFrom(0, 1, 75, 137), { nil: undefined }),
      stoppedReason: fc.option(fc.constantFrom('save_failed:push rejected', 'forced'), {
        nil: undefined,
      }),
    }),
  },
  fc.record({ kind: fc.constant('assign' as const), sessionId: fc.constantFrom('s1', 's2') }),
  fc.record({ kind: fc.constant('release' as const), sessionId: fc.constantFrom('s1', 's2') }),
  fc.record({ kind: fc.constant('reap' as const), advance: fc.constantFrom('1m', '30m', '2h') }),
);

async function run({ deps, useCases }: World, action: Step): Promise<void> {
  const current = await deps.store.getContainer(CONTAINER_ID);
  switch (action.kind) {
    case 'start':
      await useCases.containers.findOrStart(KEY);
      return;
    case 'stop':
      await useCases.containers.stop(CONTAINER_ID, stopReason('manual'));
      return;
    case 'task': {
      if (!current?.taskArn || !deps.runtime.task(current.taskArn)) return;
      const { kind: _kind, ...change } = action;
      await useCases.taskEvents.handle(deps.runtime.change(current.taskArn, change));
      return;
    }
    case 'assign':
      await useCases.sessions.assign(assignCommand(action.sessionId));
      return;
    case 'release':
      await useCases.sessions.release(releaseCommand(action.sessionId));
      return;
    case 'reap':
      deps.clock.advance(action.advance);
      await useCases.reaper.sweep();
      return;
  }
}

describe('status changes', () => {
  it('the table is the one the tests below check against', () => {
    for (const from of CONTAINER_STATUSES) {
      for (const to of CONTAINER_STATUSES) {
        expect(canTransition(from, to)).toBe(TRANSITIONS[from].includes(to));
      }
    }
  });

  it('every use case moves a container only along the transition table', async () => {
    const seen = new Set<string>();
    await fc.assert(
      fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 25 }), async (steps) => {
        // Prepare
        const store = new TransitionRecordingStore();
        const w = world({ store });

        // Act: a use case may refuse (a conflict, a stop of nothing); only what it stores counts.
        const refusals: unknown[] = [];
        for (const action of steps) {
          const { error } = await settle(run(w, action));
          if (error !== undefined) refusals.push(error);
        }

        // Assess
        for (const { from, to } of store.changes) {
          if (!from || from.generation !== to.generation) {
            expect(to.status).toBe('starting');
            if (from) expect(isLive(from.status)).toBe(false);
          } else if (from.status !== to.status) {
            expect(canTransition(from.status, to.status)).toBe(true);
            seen.add(`${from.status}→${to.status}`);
          }
        }
        // A use case that decided an illegal change was stopped by assertTransition.
        expect(refusals.map(String).filter((text) => text.includes('cannot go from'))).toEqual([]);
      }),
      {
        numRuns: 150,
        // Every transition at least once, whatever the seed.
        examples: [
          [[{ kind: 'start' }, { kind: 'task', lastStatus: 'STOPPED', exitCode: 1 }]],
          [
            [
              { kind: 'start' },
              { kind: 'task', lastStatus: 'RUNNING' },
              { kind: 'task', lastStatus: 'STOPPED', exitCode: 1 },
            ],
          ],
          [
            [
              { kind: 'start' },
              { kind: 'task', lastStatus: 'RUNNING' },
              { kind: 'stop' },
              { kind: 'task', lastStatus: 'STOPPED', exitCode: 0 },
            ],
          ],
        ],
      },
    );
    // The sequences reached every transition of the table, so each was checked.
    const legal = CONTAINER_STATUSES.flatMap((from) =>
      TRANSITIONS[from].map((to) => `${from}→${to}`),
    );
    expect([...seen].sort()).toEqual(legal.sort());
  });
});
