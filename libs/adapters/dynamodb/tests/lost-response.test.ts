/**
 * A conditional write whose response is lost (issue 12, case 10): the SDK retries it, and the
 * retry's condition fails on the first attempt's own item. That is the write done, not a lost
 * race; a competitor's item still is one. Against DynamoDB Local, with the network's part
 * played by a middleware inside the SDK's retry loop.
 */
import { StaleWriteError } from '@berth/domain';
import { afterAll, describe, expect, it } from '@jest/globals';
import { DynamoStateStore, ensureTables } from '../src/index.ts';
import { containerFixture, destroyClients, newClient, uniqueTableNames } from './helpers.ts';

afterAll(destroyClients);

/** A timeout as the SDK's retry strategy sees one: transient, so it tries again. */
function timeout(): Error {
  const error = new Error('socket timed out waiting for the response');
  error.name = 'TimeoutError';
  return error;
}

/**
 * A store whose client fails its next PutItem once: `after` the request reached DynamoDB
 * (the response is lost) or `before` it was sent.
 */
async function storeLosingOnePut(when: 'after' | 'before') {
  const client = newClient({ maxAttempts: 3 });
  const names = uniqueTableNames('lost');
  await ensureTables(client, names);
  let armed = true;
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const fire = armed && context.commandName === 'PutItemCommand';
      if (fire) armed = false;
      if (fire && when === 'before') throw timeout();
      const result = await next(args);
      if (fire) throw timeout();
      return result;
    },
    { step: 'deserialize', name: 'loseOnePutItem' },
  );
  return { store: new DynamoStateStore({ client, ...names }), fired: () => !armed };
}

describe('a put whose response was lost', () => {
  it('creates a generation once although the first response never arrived', async () => {
    // Prepare
    const { store, fired } = await storeLosingOnePut('after');
    const record = containerFixture({ clientId: 'lost', projectId: 'web', userId: 'ann' });

    // Act
    await store.write({
      containers: [{ record, expect: { kind: 'new-generation', previousGeneration: null } }],
    });

    // Assess
    expect(fired()).toBe(true);
    expect(await store.getContainer(record.containerId)).toEqual(record);
  });

  it("still loses to a competitor's item on a retried attempt", async () => {
    // Prepare: a competitor's generation 1 is there; our first attempt never reaches DynamoDB
    const { store, fired } = await storeLosingOnePut('before');
    const key = { clientId: 'lost', projectId: 'web', userId: 'bob' };
    const competitor = containerFixture(key, 1, { taskArn: 'competitor' });
    const ours = containerFixture(key, 1, { taskArn: 'ours' });
    await store.write({
      containers: [
        { record: competitor, expect: { kind: 'new-generation', previousGeneration: null } },
      ],
    });

    // Act
    const write = store.write({
      containers: [{ record: ours, expect: { kind: 'new-generation', previousGeneration: null } }],
    });

    // Assess
    await expect(write).rejects.toBeInstanceOf(StaleWriteError);
    expect(fired()).toBe(true);
    expect(await store.getContainer(competitor.containerId)).toEqual(competitor);
  });
});
