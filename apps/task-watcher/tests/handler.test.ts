import { jest } from '@jest/globals';
import { UseCases } from '@berth/core';
import { UnavailableError } from '@berth/domain';
import { makeCoreDeps } from '@berth/testing';
import { createTaskEventHandler } from '../src/handler.ts';

const log = { info: () => {}, warn: () => {}, error: () => {} };
const KEY = { clientId: 'acme', projectId: 'web', userId: 'ann' };

function world() {
  const deps = makeCoreDeps();
  const useCases = new UseCases(deps);
  const errors: number[] = [];
  const handle = createTaskEventHandler(useCases, log, () => errors.push(1));
  return { deps, useCases, handle, errors };
}

describe('task-watcher message handler', () => {
  it('applies an ECS Task State Change and removes the message', async () => {
    // Prepare
    const { deps, useCases, handle } = world();
    const { container } = await useCases.containers.findOrStart(KEY);
    const event = deps.runtime.change(container.taskArn!, { lastStatus: 'RUNNING' });

    // Act
    const outcome = await handle({ body: JSON.stringify(event), messageId: 'm1' });

    // Assess
    expect(outcome).toBe('done');
    expect((await deps.store.getContainer(container.containerId))?.status).toBe('running');
  });

  it.each([
    ['not json'],
    ['{}'],
    [JSON.stringify({ source: 'aws.ecs', 'detail-type': 'Something else' })],
  ])('drops %s without retrying it', async (body) => {
    const { handle, errors } = world();
    expect(await handle({ body, messageId: 'm2' })).toBe('done');
    expect(errors).toEqual([]);
  });

  it('leaves the message for a retry when the store fails, and counts the error', async () => {
    // Prepare
    const { deps, useCases, handle, errors } = world();
    const { container } = await useCases.containers.findOrStart(KEY);
    const event = deps.runtime.change(container.taskArn!, { lastStatus: 'RUNNING' });
    jest
      .spyOn(deps.store, 'getContainer')
      .mockRejectedValueOnce(new UnavailableError('store down'));

    // Act
    const outcome = await handle({ body: JSON.stringify(event), messageId: 'm3' });

    // Assess
    expect(outcome).toBe('retry');
    expect(errors).toHaveLength(1);
  });
});
