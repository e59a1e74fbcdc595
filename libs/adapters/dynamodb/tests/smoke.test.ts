import { expect, it } from '@jest/globals';
import { storeWithTables, containerFixture } from './helpers.ts';

it('smoke', async () => {
  const { store } = await storeWithTables('smoke');
  const record = containerFixture({ clientId: 'a', projectId: 'b', userId: 'c' });
  await store.write({ containers: [{ record, expect: { kind: 'new-generation', previousGeneration: null } }] });
  expect(await store.getContainer('a.b.c')).toEqual(record);
});
