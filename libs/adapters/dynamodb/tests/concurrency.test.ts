import { FINAL_STATUSES, StaleWriteError, containerIdOf } from '@berth/domain';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { DynamoStateStore, TableNames } from '../src/index.ts';
import type { RacerResult } from './fixtures/generation-racer.ts';
import { at, containerFixture, destroyClients, storeWithTables } from './helpers.ts';

afterAll(destroyClients);

let store: DynamoStateStore;
let names: TableNames;

beforeAll(async () => {
  ({ store, names } = await storeWithTables('race'));
});

async function settleAll(attempts: Array<Promise<void>>) {
  const results = await Promise.allSettled(attempts);
  const won = results.filter((result) => result.status === 'fulfilled').length;
  const errors = results.flatMap((result) =>
    result.status === 'rejected' ? [result.reason as unknown] : [],
  );
  return { won, errors };
}

describe('in-process concurrency', () => {
  it('lets exactly one of 25 concurrent creators make generation 1', async () => {
    // Prepare
    const key = { clientId: 'race', projectId: 'local', userId: 'first' };
    const candidates = Array.from({ length: 25 }, (_, i) =>
      containerFixture(key, 1, { taskArn: `candidate-${i}` }),
    );

    // Act
    const { won, errors } = await settleAll(
      candidates.map((record) =>
        store.write({
          containers: [{ record, expect: { kind: 'new-generation', previousGeneration: null } }],
        }),
      ),
    );

    // Assess
    expect(won).toBe(1);
    expect(errors).toHaveLength(24);
    expect(errors.every((error) => error instanceof StaleWriteError)).toBe(true);
    const stored = await store.getContainer(containerIdOf(key));
    expect(candidates).toContainEqual(stored);
  });

  it('lets exactly one of 25 concurrent creators replace a stopped generation', async () => {
    // Prepare
    const key = { clientId: 'race', projectId: 'local', userId: 'next' };
    const old = containerFixture(key, 6, {
      status: 'stopped',
      stoppedAt: at(1),
      stopReason: 'idle',
    });
    await store.write({
      containers: [{ record: old, expect: { kind: 'new-generation', previousGeneration: null } }],
    });
    const candidates = Array.from({ length: 25 }, (_, i) =>
      containerFixture(key, 7, { taskArn: `candidate-${i}` }),
    );

    // Act
    const { won, errors } = await settleAll(
      candidates.map((record) =>
        store.write({
          containers: [{ record, expect: { kind: 'new-generation', previousGeneration: 6 } }],
        }),
      ),
    );

    // Assess
    expect(won).toBe(1);
    expect(errors.every((error) => error instanceof StaleWriteError)).toBe(true);
    const stored = await store.getContainer(containerIdOf(key));
    expect(stored?.generation).toBe(7);
    expect(candidates).toContainEqual(stored);
  });
});

describe('multi-process concurrency', () => {
  const fixture = fileURLToPath(new URL('./fixtures/generation-racer.ts', import.meta.url));
  const racers = 4;
  const generations = 30;

  interface Racer {
    ready: Promise<void>;
    start(): void;
    result: Promise<RacerResult>;
  }

  function spawnRacer(id: string): Racer {
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      RACER_ID: id,
      TARGET_GENERATIONS: String(generations),
      CONTAINER_TABLE: names.containerTable,
      SESSION_TABLE: names.sessionTable,
    };
    // Jest's ESM flags are for Jest; the fixture is plain Node 24 with type stripping.
    delete env.NODE_OPTIONS;
    const child = spawn(process.execPath, [fixture], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
    const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
    const ready = lines.next().then((line) => {
      if (line.value !== 'ready') throw new Error(`racer ${id} did not start: ${stderr}`);
    });
    const result = ready.then(async () => {
      const output = await lines.next();
      const [code] = await exited;
      if (code !== 0 || output.done)
        throw new Error(`racer ${id} failed (exit ${code}): ${stderr}`);
      return JSON.parse(output.value) as RacerResult;
    });
    return { ready, start: () => child.stdin.end('go\n'), result };
  }

  it(`keeps generations contiguous and never two live at once across ${racers} processes`, async () => {
    expect(Number(process.versions.node.split('.')[0])).toBeGreaterThanOrEqual(24);

    // Prepare: start every racer and let them go together once all are up.
    const spawned = Array.from({ length: racers }, (_, i) => spawnRacer(`racer-${i}`));
    await Promise.all(spawned.map((racer) => racer.ready));

    // Act
    for (const racer of spawned) racer.start();
    const results = await Promise.all(spawned.map((racer) => racer.result));

    // Assess
    const violations = results.flatMap((result) => result.violations);
    expect(violations).toEqual([]);
    const wins = results
      .flatMap((result) => result.wins)
      .sort((a, b) => a.generation - b.generation);
    expect(wins.map((win) => win.generation)).toEqual(
      Array.from({ length: generations }, (_, i) => i + 1),
    );
    for (const [index, win] of wins.entries()) {
      const next = wins[index + 1];
      // A generation was stopped before the next one was created.
      if (next) expect(win.stopSentAt).toBeLessThanOrEqual(next.wonAt);
    }
    // The race was real: attempts were lost, and more than one process won some.
    expect(results.reduce((sum, result) => sum + result.stale, 0)).toBeGreaterThan(0);
    expect(new Set(wins.map((win) => win.racer)).size).toBeGreaterThan(1);
    const final = await store.getContainer(
      containerIdOf({ clientId: 'race', projectId: 'multi', userId: 'user' }),
    );
    expect(final?.generation).toBe(generations);
    expect(FINAL_STATUSES).toContain(final?.status);
  }, 180_000);
});
