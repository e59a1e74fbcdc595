import { afterAll, describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import {
  CreateQueueCommand,
  GetQueueAttributesCommand,
  SendMessageCommand,
} from '@aws-sdk/client-sqs';
import { pino } from 'pino';
import { applyIdentity, awaitIdentity, type PoolIdentity } from '../src/pool-member.ts';
import { sqsClient } from './harness.ts';

const sqs = sqsClient();
afterAll(() => sqs.destroy());

/** The name of every command this client sends from now on. */
function recordCommands(): string[] {
  const names: string[] = [];
  sqs.middlewareStack.add(
    (next, context) => (args) => {
      names.push(String(context.commandName));
      return next(args);
    },
    { step: 'initialize', name: `record-${randomUUID()}` },
  );
  return names;
}

describe('a pool member waiting for its identity', () => {
  it('takes the identity from its control queue and leaves the queue to the reaper (its AWS role may not delete queues)', async () => {
    // Prepare
    const { QueueUrl: controlQueueUrl = '' } = await sqs.send(
      new CreateQueueCommand({ QueueName: `berth-pool-test-${randomUUID().slice(0, 8)}-ctl` }),
    );
    const identity = {
      type: 'pool.identity',
      containerId: 'acme.web.john',
      generation: 3,
      workspacePath: '/workspace/acme/web/john',
      repoUrl: 'https://git.example/acme/web.git',
      inputQueueUrl: 'http://queues/berth-acme-web-john-g3-in',
      outputQueueUrl: 'http://queues/berth-acme-web-john-g3-out',
    };
    await sqs.send(
      new SendMessageCommand({ QueueUrl: controlQueueUrl, MessageBody: JSON.stringify(identity) }),
    );
    const commands = recordCommands();

    // Act
    const received = await awaitIdentity({
      sqs,
      queueUrl: controlQueueUrl,
      logger: pino({ level: 'silent' }),
      signal: new AbortController().signal,
    });

    // Assess
    expect(received).toEqual({
      containerId: 'acme.web.john',
      generation: 3,
      workspacePath: '/workspace/acme/web/john',
      repoUrl: 'https://git.example/acme/web.git',
      inputQueueUrl: 'http://queues/berth-acme-web-john-g3-in',
      outputQueueUrl: 'http://queues/berth-acme-web-john-g3-out',
    });
    expect(commands).toEqual(['ReceiveMessageCommand', 'DeleteMessageCommand']);
    const attributes = await sqs.send(
      new GetQueueAttributesCommand({
        QueueUrl: controlQueueUrl,
        AttributeNames: ['ApproximateNumberOfMessages'],
      }),
    );
    expect(attributes.Attributes?.ApproximateNumberOfMessages).toBe('0');
  });
});

describe('applyIdentity', () => {
  const identity: PoolIdentity = {
    containerId: 'acme.web.john',
    generation: 2,
    workspacePath: '/workspace/acme/web/john',
    repoUrl: undefined,
    inputQueueUrl: 'http://queues/in',
    outputQueueUrl: 'http://queues/out',
  };

  it('sets the workspace path the claim names, as on ECS where the volume is mounted there', () => {
    // Prepare
    const env: NodeJS.ProcessEnv = { BERTH_POOL_CONTROL_QUEUE_URL: 'http://queues/ctl' };

    // Act
    applyIdentity(env, identity);

    // Assess
    expect(env).toEqual({
      CONTAINER_ID: 'acme.web.john',
      WORKSPACE_PATH: '/workspace/acme/web/john',
      BERTH_GENERATION: '2',
      BERTH_INPUT_QUEUE_URL: 'http://queues/in',
      BERTH_OUTPUT_QUEUE_URL: 'http://queues/out',
    });
  });

  it("maps the path through the local runtime's volumes, as a cold start's variables are (a rehearsal)", () => {
    // Prepare
    const env: NodeJS.ProcessEnv = {
      BERTH_POOL_CONTROL_QUEUE_URL: 'http://queues/ctl',
      BERTH_LOCAL_MOUNTS: JSON.stringify([
        { containerPath: '/workspace', hostPath: '/data/volumes/workspaces' },
      ]),
    };

    // Act
    applyIdentity(env, identity);

    // Assess
    expect(env.WORKSPACE_PATH).toBe('/data/volumes/workspaces/acme/web/john');
  });
});
