/**
 * The retry policy lives in the SDK's middleware, which aws-sdk-client-mock bypasses (it
 * stubs `send`), so these tests drive a real client against a tiny ECS endpoint on loopback
 * that answers with scripted JSON-protocol responses.
 */
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { jest } from '@jest/globals';
import { InvalidArgumentError, UnavailableError } from '@berth/domain';
import { EcsRuntime, createEcsClient, fullJitterBackoff } from '../src/index.ts';

interface Scripted {
  status: number;
  body: object;
}

let server: Server;
let endpoint: string;
let script: Scripted[] = [];
const received: { target: string | undefined; body: unknown }[] = [];

async function readBody(request: IncomingMessage): Promise<string> {
  let text = '';
  for await (const chunk of request) text += String(chunk);
  return text;
}

beforeAll(async () => {
  process.env.AWS_ACCESS_KEY_ID ??= 'test';
  process.env.AWS_SECRET_ACCESS_KEY ??= 'test';
  server = createServer((request, response) => {
    void readBody(request).then((text) => {
      received.push({
        target: request.headers['x-amz-target'] as string | undefined,
        body: JSON.parse(text),
      });
      const next = script.shift() ?? {
        status: 500,
        body: { __type: 'ServerException', message: 'script ended' },
      };
      response.writeHead(next.status, { 'content-type': 'application/x-amz-json-1.1' });
      response.end(JSON.stringify(next.body));
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.close();
  await once(server, 'close');
});

beforeEach(() => {
  script = [];
  received.length = 0;
});

const THROTTLED: Scripted = {
  status: 400,
  body: { __type: 'ThrottlingException', message: 'Rate exceeded' },
};
const RUN_TASK_OK: Scripted = {
  status: 200,
  body: {
    tasks: [
      {
        taskArn: 'arn:aws:ecs:local:000000000000:task/berth/abc',
        lastStatus: 'PENDING',
        desiredStatus: 'RUNNING',
        createdAt: 1767322800.5,
        tags: [
          { key: 'ContainerId', value: 'a.b.c' },
          { key: 'Generation', value: '1' },
        ],
      },
    ],
    failures: [],
  },
};

function runtime(maxAttempts = 6): EcsRuntime {
  return new EcsRuntime({
    client: createEcsClient({
      endpoint,
      region: 'us-east-1',
      maxAttempts,
      baseDelayMs: 1,
      maxDelayMs: 5,
    }),
    cluster: 'berth',
    taskDefinition: 'berth-workspace',
    containerName: 'workspace',
    subnets: [],
    securityGroups: [],
    workspaceRoot: '/w',
  });
}

const SPEC = {
  clientId: 'a',
  projectId: 'b',
  userId: 'c',
  containerId: 'a.b.c',
  generation: 1,
  workspacePath: '/w/a/b/c',
  environment: {},
};

describe('createEcsClient retries', () => {
  it('retries a throttled RunTask with the same client token until it succeeds', async () => {
    // Prepare
    script = [THROTTLED, THROTTLED, RUN_TASK_OK];

    // Act
    const info = await runtime().startTask(SPEC);

    // Assess
    expect(info).toMatchObject({
      taskArn: 'arn:aws:ecs:local:000000000000:task/berth/abc',
      containerId: 'a.b.c',
      generation: 1,
      lastStatus: 'PENDING',
    });
    expect(received).toHaveLength(3);
    expect(new Set(received.map((request) => request.target))).toEqual(
      new Set(['AmazonEC2ContainerServiceV20141113.RunTask']),
    );
    const tokens = received.map((request) => (request.body as { clientToken: string }).clientToken);
    expect(new Set(tokens).size).toBe(1);
  });

  it('retries a throttle ECS wraps in an InvalidParameterException', async () => {
    // Prepare
    script = [
      {
        status: 400,
        body: {
          __type: 'InvalidParameterException',
          message:
            'Error retrieving subnet information for [subnet-a]: Rate exceeded (ErrorCode: Throttling)',
        },
      },
      RUN_TASK_OK,
    ];

    // Act
    await runtime().startTask(SPEC);

    // Assess
    expect(received).toHaveLength(2);
  });

  it('gives up after the bounded number of attempts with an UnavailableError', async () => {
    // Prepare
    script = Array.from({ length: 10 }, () => THROTTLED);

    // Act
    const attempt = runtime(4).startTask(SPEC);

    // Assess
    await expect(attempt).rejects.toBeInstanceOf(UnavailableError);
    expect(received).toHaveLength(4);
  });

  it('does not retry bad parameters', async () => {
    // Prepare
    script = [
      { status: 400, body: { __type: 'ClientException', message: 'TaskDefinition not found.' } },
      RUN_TASK_OK,
    ];

    // Act
    const attempt = runtime().startTask(SPEC);

    // Assess
    await expect(attempt).rejects.toBeInstanceOf(InvalidArgumentError);
    expect(received).toHaveLength(1);
  });
});

describe('fullJitterBackoff', () => {
  it('waits a random share of an exponentially growing, capped ceiling', () => {
    // Prepare
    const backoff = fullJitterBackoff(100, 1000);
    const random = jest.spyOn(Math, 'random');

    // Act
    random.mockReturnValue(0.999999);
    const highest = [1, 2, 3, 4, 5, 6].map(backoff);
    random.mockReturnValue(0);
    const lowest = [1, 2, 3].map(backoff);
    random.mockRestore();

    // Assess
    expect(highest).toEqual([99, 199, 399, 799, 999, 999]);
    expect(lowest).toEqual([0, 0, 0]);
  });
});
