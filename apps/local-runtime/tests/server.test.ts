/**
 * The wire protocol itself, through Fastify's inject (no port, no agent processes): what an
 * AWS SDK client would see for malformed or unknown requests.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TaskStateChange } from '@berth/domain';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { Supervisor, buildServer } from '../src/index.ts';

const TARGET = 'AmazonEC2ContainerServiceV20141113';
let app: FastifyInstance;
let dataDir: string;
const sent: TaskStateChange[] = [];

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'berth-protocol-'));
  const supervisor = new Supervisor({
    dataDir,
    agentEntry: '/nonexistent/agent.ts',
    shutdownGraceMs: 1000,
    events: { send: (event) => Promise.resolve(void sent.push(event)) },
    logger: pino({ level: 'silent' }),
  });
  app = buildServer(supervisor);
  await app.ready();
});

afterAll(async () => {
  await app.close();
  await rm(dataDir, { recursive: true, force: true });
});

async function call(
  operation: string,
  body: unknown,
): Promise<{ status: number; json: Record<string, unknown> }> {
  const response = await app.inject({
    method: 'POST',
    url: '/',
    headers: {
      'content-type': 'application/x-amz-json-1.1',
      'x-amz-target': `${TARGET}.${operation}`,
    },
    payload: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: response.statusCode, json: response.json<Record<string, unknown>>() };
}

describe('the ECS JSON protocol', () => {
  it('answers an unknown operation with UnknownOperationException', async () => {
    // Act
    const answer = await call('CreateCluster', {});

    // Assess
    expect(answer).toEqual({
      status: 400,
      json: {
        __type: 'UnknownOperationException',
        message: `the local runtime does not support ${TARGET}.CreateCluster`,
      },
    });
  });

  it('answers a body that is not JSON with SerializationException', async () => {
    // Act
    const answer = await call('ListTasks', '{nope');

    // Assess
    expect(answer.status).toBe(400);
    expect(answer.json.__type).toBe('SerializationException');
  });

  it('reports unknown tasks as MISSING failures', async () => {
    // Act
    const answer = await call('DescribeTasks', {
      tasks: ['arn:aws:ecs:local:000000000000:task/berth/x'],
    });

    // Assess
    expect(answer).toEqual({
      status: 200,
      json: {
        tasks: [],
        failures: [{ arn: 'arn:aws:ecs:local:000000000000:task/berth/x', reason: 'MISSING' }],
      },
    });
  });

  it('refuses DescribeTasks without tasks', async () => {
    // Act
    const answer = await call('DescribeTasks', {});

    // Assess
    expect(answer.status).toBe(400);
    expect(answer.json.__type).toBe('InvalidParameterException');
  });

  it('answers StopTask of an unknown task as ECS does', async () => {
    // Act
    const answer = await call('StopTask', {
      task: 'arn:aws:ecs:local:000000000000:task/berth/x',
      reason: 'idle',
    });

    // Assess
    expect(answer).toEqual({
      status: 400,
      json: { __type: 'InvalidParameterException', message: 'The referenced task was not found.' },
    });
  });

  it('refuses RunTask without the tags berth tasks carry, before starting anything', async () => {
    // Act
    const answer = await call('RunTask', {
      taskDefinition: 'berth-workspace',
      tags: [{ key: 'ContainerId', value: 'a.b.c' }],
    });

    // Assess
    expect(answer.status).toBe(400);
    expect(answer.json.__type).toBe('InvalidParameterException');
    expect(answer.json.message).toMatch(/ClientId/);
    expect(sent).toHaveLength(0);
  });

  it('refuses RunTask for more than one task', async () => {
    // Act
    const answer = await call('RunTask', { taskDefinition: 'berth-workspace', count: 2 });

    // Assess
    expect(answer.json.__type).toBe('InvalidParameterException');
  });

  it('lists nothing, without a next token, when nothing runs', async () => {
    // Act
    const answer = await call('ListTasks', { startedBy: 'berth', desiredStatus: 'RUNNING' });

    // Assess
    expect(answer).toEqual({ status: 200, json: { taskArns: [] } });
  });
});
