import { StaleWriteError, UnavailableError } from '@berth/domain';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { DynamoStateStore } from '../src/index.ts';
import {
  containerFixture,
  destroyClients,
  newClient,
  sessionFixture,
  storeWithTables,
  uniqueTableNames,
} from './helpers.ts';

afterAll(destroyClients);

describe('error mapping', () => {
  it('names a missing table in an UnavailableError for every operation', async () => {
    // Prepare
    const names = uniqueTableNames('missing');
    const store = new DynamoStateStore({ client: newClient({}), ...names });
    const record = containerFixture({ clientId: 'a', projectId: 'b', userId: 'c' });
    const attempts: Array<[string, () => Promise<unknown>]> = [
      [names.containerTable, () => store.getContainer('a.b.c')],
      [names.sessionTable, () => store.getSession('s')],
      [
        names.containerTable,
        () => store.write({ containers: [{ record, expect: { kind: 'version', version: 1 } }] }),
      ],
      [names.containerTable, () => store.listContainers({ userId: 'c' }, 10)],
      [names.containerTable, () => store.listContainers({}, 10)],
      [names.containerTable, () => store.listIdleContainers(record.createdAt, 10)],
      [names.containerTable, () => store.listContainersByStatus('running', 10)],
      [names.sessionTable, () => store.listSessionsByContainer('a.b.c')],
      [names.sessionTable, () => store.listStaleSessions(record.createdAt, 10)],
      [names.containerTable, () => store.ping()],
    ];

    for (const [table, attempt] of attempts) {
      // Act
      const error = await attempt().then(
        () => undefined,
        (caught: unknown) => caught,
      );

      // Assess
      expect(error).toBeInstanceOf(UnavailableError);
      expect((error as UnavailableError).message).toContain(table);
      expect((error as UnavailableError).retryable).toBe(true);
      expect((error as Error).cause).toMatchObject({ name: 'ResourceNotFoundException' });
    }
  });

  it('turns an unreachable endpoint into an UnavailableError with the cause', async () => {
    // Prepare: nothing listens on port 9 of this host.
    const client = newClient({ endpoint: 'http://127.0.0.1:9', maxAttempts: 1 });
    const store = new DynamoStateStore({ client, containerTable: 'c', sessionTable: 's' });

    // Act
    const error = await store.ping().then(
      () => undefined,
      (caught: unknown) => caught,
    );

    // Assess
    expect(error).toBeInstanceOf(UnavailableError);
    expect((error as Error).cause).toBeDefined();
  });

  describe('against real tables', () => {
    let store: DynamoStateStore;

    beforeAll(async () => {
      ({ store } = await storeWithTables('errors'));
    });

    it('reports a request DynamoDB refuses as UnavailableError carrying its message', async () => {
      // Prepare: one transaction may not touch the same item twice.
      const record = containerFixture({ clientId: 'a', projectId: 'b', userId: 'twice' });

      // Act
      const error = await store
        .write({
          containers: [
            { record, expect: { kind: 'new-generation', previousGeneration: null } },
            { record: { ...record, version: 2 }, expect: { kind: 'version', version: 1 } },
          ],
        })
        .then(
          () => undefined,
          (caught: unknown) => caught,
        );

      // Assess
      expect(error).toBeInstanceOf(UnavailableError);
      expect(error).not.toBeInstanceOf(StaleWriteError);
      expect((error as Error).cause).toMatchObject({ name: 'ValidationException' });
      const causeMessage = ((error as Error).cause as Error).message;
      expect(causeMessage.length).toBeGreaterThan(0);
      expect((error as Error).message).toContain(causeMessage);
      expect(await store.getContainer(record.containerId)).toBeUndefined();
    });

    it('reports a lost condition in a transaction as StaleWriteError with the reasons', async () => {
      // Prepare
      const session = sessionFixture('taken');
      await store.write({ sessions: [{ record: session, expect: { kind: 'absent' } }] });

      // Act
      const error = await store
        .write({
          sessions: [
            { record: sessionFixture('free'), expect: { kind: 'absent' } },
            { record: session, expect: { kind: 'absent' } },
          ],
        })
        .then(
          () => undefined,
          (caught: unknown) => caught,
        );

      // Assess
      expect(error).toBeInstanceOf(StaleWriteError);
      expect((error as Error).message).toContain('ConditionalCheckFailed');
      expect((error as Error).cause).toMatchObject({ name: 'TransactionCanceledException' });
    });
  });
});
