import { createHash } from 'node:crypto';
import {
  ClientException,
  ConflictException,
  DescribeTasksCommand,
  ECSClient,
  InvalidParameterException,
  ListTasksCommand,
  RunTaskCommand,
  ServerException,
  StopTaskCommand,
  type Task,
} from '@aws-sdk/client-ecs';
import { InvalidArgumentError, UnavailableError, type TaskSpec } from '@berth/domain';
import { mockClient } from 'aws-sdk-client-mock';
import { EcsRuntime, clientTokenFor, type EcsRuntimeOptions } from '../src/index.ts';

const ecs = mockClient(ECSClient);

const SPEC: TaskSpec = {
  clientId: 'ameliastamps',
  projectId: 'website',
  userId: 'john',
  containerId: 'ameliastamps.website.john',
  generation: 3,
  workspacePath: '/workspaces/ameliastamps/website/john',
  environment: {
    BERTH_INPUT_QUEUE_URL: 'https://sqs/in',
    BERTH_OUTPUT_QUEUE_URL: 'https://sqs/out',
  },
};

const TASK_ARN = 'arn:aws:ecs:eu-west-1:123456789012:task/berth/0123456789abcdef0123456789abcdef';

function runtime(overrides: Partial<EcsRuntimeOptions> = {}): EcsRuntime {
  return new EcsRuntime({
    client: new ECSClient({ region: 'eu-west-1' }),
    cluster: 'berth',
    taskDefinition: 'berth-workspace:7',
    containerName: 'workspace',
    subnets: ['subnet-a', 'subnet-b'],
    securityGroups: ['sg-1'],
    assignPublicIp: false,
    workspaceRoot: '/workspaces',
    launchType: 'FARGATE',
    ...overrides,
  });
}

function ecsTask(overrides: Partial<Task> = {}): Task {
  return {
    taskArn: TASK_ARN,
    lastStatus: 'RUNNING',
    desiredStatus: 'RUNNING',
    startedAt: new Date('2026-01-02T03:04:05.000Z'),
    tags: [
      { key: 'ContainerId', value: SPEC.containerId },
      { key: 'ManagedBy', value: 'berth' },
      { key: 'Generation', value: '3' },
    ],
    containers: [
      { name: 'sidecar', exitCode: 9 },
      { name: 'workspace', lastStatus: 'RUNNING' },
    ],
    attachments: [
      {
        type: 'ElasticNetworkInterface',
        details: [
          { name: 'subnetId', value: 'subnet-a' },
          { name: 'privateIPv4Address', value: '10.0.1.23' },
        ],
      },
    ],
    ...overrides,
  };
}

function sdkError(name: string, message: string): Error {
  return Object.assign(new Error(message), {
    name,
    $fault: 'client',
    $metadata: { httpStatusCode: 400 },
  });
}

beforeEach(() => {
  ecs.reset();
});

describe('EcsRuntime.workspacePathFor', () => {
  it('places the workspace under the root by client, project and user', () => {
    // Act
    const path = runtime({ workspaceRoot: '/data/workspaces/' }).workspacePathFor(SPEC);

    // Assess
    expect(path).toBe('/data/workspaces/ameliastamps/website/john');
  });
});

describe('EcsRuntime.startTask', () => {
  it('sends the full RunTask request: overrides, tags, network and an idempotency token', async () => {
    // Prepare
    ecs
      .on(RunTaskCommand)
      .resolves({ tasks: [ecsTask({ lastStatus: 'PROVISIONING', startedAt: undefined })] });

    // Act
    const info = await runtime().startTask(SPEC);

    // Assess
    const calls = ecs.commandCalls(RunTaskCommand);
    expect(calls).toHaveLength(1);
    expect(calls[0]!.args[0].input).toEqual({
      cluster: 'berth',
      taskDefinition: 'berth-workspace:7',
      launchType: 'FARGATE',
      count: 1,
      networkConfiguration: {
        awsvpcConfiguration: {
          subnets: ['subnet-a', 'subnet-b'],
          securityGroups: ['sg-1'],
          assignPublicIp: 'DISABLED',
        },
      },
      overrides: {
        containerOverrides: [
          {
            name: 'workspace',
            environment: [
              { name: 'CONTAINER_ID', value: 'ameliastamps.website.john' },
              { name: 'WORKSPACE_PATH', value: '/workspaces/ameliastamps/website/john' },
              { name: 'BERTH_GENERATION', value: '3' },
              { name: 'BERTH_INPUT_QUEUE_URL', value: 'https://sqs/in' },
              { name: 'BERTH_OUTPUT_QUEUE_URL', value: 'https://sqs/out' },
            ],
          },
        ],
      },
      tags: [
        { key: 'ContainerId', value: 'ameliastamps.website.john' },
        { key: 'ClientId', value: 'ameliastamps' },
        { key: 'ProjectId', value: 'website' },
        { key: 'UserId', value: 'john' },
        { key: 'ManagedBy', value: 'berth' },
        { key: 'Generation', value: '3' },
      ],
      propagateTags: 'TASK_DEFINITION',
      enableECSManagedTags: true,
      startedBy: 'berth',
      group: 'berth',
      clientToken: createHash('sha256').update('ameliastamps.website.john#3').digest('hex'),
    });
    expect(info).toEqual({
      taskArn: TASK_ARN,
      containerId: 'ameliastamps.website.john',
      generation: 3,
      lastStatus: 'PROVISIONING',
      desiredStatus: 'RUNNING',
      startedAt: undefined,
      stoppedAt: undefined,
      stopCode: undefined,
      stoppedReason: undefined,
      exitCode: undefined,
      endpoint: '10.0.1.23',
    });
  });

  it('leaves out the launch type and network configuration when none is configured', async () => {
    // Prepare
    ecs.on(RunTaskCommand).resolves({ tasks: [ecsTask()] });

    // Act
    await runtime({ launchType: undefined, subnets: [], securityGroups: [] }).startTask(SPEC);

    // Assess
    const input = ecs.commandCalls(RunTaskCommand)[0]!.args[0].input;
    expect(input).not.toHaveProperty('launchType');
    expect(input).not.toHaveProperty('networkConfiguration');
  });

  it('asks for a public IP when configured to', async () => {
    // Prepare
    ecs.on(RunTaskCommand).resolves({ tasks: [ecsTask()] });

    // Act
    await runtime({ assignPublicIp: true }).startTask(SPEC);

    // Assess
    expect(
      ecs.commandCalls(RunTaskCommand)[0]!.args[0].input.networkConfiguration?.awsvpcConfiguration
        ?.assignPublicIp,
    ).toBe('ENABLED');
  });

  it('never lets the extra environment replace the variables berth guarantees', async () => {
    // Prepare
    ecs.on(RunTaskCommand).resolves({ tasks: [ecsTask()] });

    // Act
    await runtime().startTask({ ...SPEC, environment: { CONTAINER_ID: 'forged', EXTRA: '1' } });

    // Assess
    expect(
      ecs.commandCalls(RunTaskCommand)[0]!.args[0].input.overrides?.containerOverrides?.[0]
        ?.environment,
    ).toEqual([
      { name: 'CONTAINER_ID', value: 'ameliastamps.website.john' },
      { name: 'WORKSPACE_PATH', value: '/workspaces/ameliastamps/website/john' },
      { name: 'BERTH_GENERATION', value: '3' },
      { name: 'EXTRA', value: '1' },
    ]);
  });

  it('sends the same client token for a retried start and a different one for the next generation', async () => {
    // Prepare
    ecs.on(RunTaskCommand).resolves({ tasks: [ecsTask()] });
    const subject = runtime();

    // Act
    await subject.startTask(SPEC);
    await subject.startTask(SPEC);
    await subject.startTask({ ...SPEC, generation: 4 });

    // Assess
    const tokens = ecs.commandCalls(RunTaskCommand).map((call) => call.args[0].input.clientToken);
    expect(tokens[0]).toMatch(/^[0-9a-f]{64}$/);
    expect(tokens[1]).toBe(tokens[0]);
    expect(tokens[2]).toBe(clientTokenFor(SPEC.containerId, 4));
    expect(tokens[2]).not.toBe(tokens[0]);
  });

  it('turns placement failures into an UnavailableError naming the reason', async () => {
    // Prepare
    ecs.on(RunTaskCommand).resolves({
      tasks: [],
      failures: [{ reason: 'Capacity is unavailable at this time', detail: 'FARGATE' }],
    });

    // Act
    const attempt = runtime().startTask(SPEC);

    // Assess
    await expect(attempt).rejects.toBeInstanceOf(UnavailableError);
    await expect(attempt).rejects.toThrow(/Capacity is unavailable at this time \(FARGATE\)/);
  });

  it('answers with the existing task when ECS reports the client token in use', async () => {
    // Prepare
    ecs
      .on(RunTaskCommand)
      .rejects(
        new ConflictException({ message: 'token in use', $metadata: {}, resourceIds: [TASK_ARN] }),
      );
    ecs.on(DescribeTasksCommand).resolves({ tasks: [ecsTask()], failures: [] });

    // Act
    const info = await runtime().startTask(SPEC);

    // Assess
    expect(info.taskArn).toBe(TASK_ARN);
    expect(ecs.commandCalls(DescribeTasksCommand)[0]!.args[0].input.tasks).toEqual([TASK_ARN]);
  });

  it('turns throttling left after the retries into a retryable UnavailableError', async () => {
    // Prepare
    ecs.on(RunTaskCommand).rejects(sdkError('ThrottlingException', 'Rate exceeded'));

    // Act
    const attempt = runtime().startTask(SPEC);

    // Assess
    await expect(attempt).rejects.toBeInstanceOf(UnavailableError);
    await expect(attempt).rejects.toMatchObject({ retryable: true, code: 'unavailable' });
  });

  it('turns a throttle wrapped in InvalidParameterException into an UnavailableError', async () => {
    // Prepare
    ecs.on(RunTaskCommand).rejects(
      new InvalidParameterException({
        message:
          'Error retrieving subnet information for [subnet-a]: Rate exceeded (ErrorCode: Throttling)',
        $metadata: {},
      }),
    );

    // Act
    const attempt = runtime().startTask(SPEC);

    // Assess
    await expect(attempt).rejects.toBeInstanceOf(UnavailableError);
  });

  it('turns bad parameters into an InvalidArgumentError', async () => {
    // Prepare
    ecs
      .on(RunTaskCommand)
      .rejects(new ClientException({ message: 'TaskDefinition not found.', $metadata: {} }));

    // Act
    const attempt = runtime().startTask(SPEC);

    // Assess
    await expect(attempt).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(attempt).rejects.toMatchObject({ retryable: false });
  });

  it('turns server errors into an UnavailableError', async () => {
    // Prepare
    ecs.on(RunTaskCommand).rejects(new ServerException({ message: 'internal', $metadata: {} }));

    // Act / Assess
    await expect(runtime().startTask(SPEC)).rejects.toBeInstanceOf(UnavailableError);
  });
});

describe('EcsRuntime.describeTask', () => {
  it('asks for the task with its tags and maps the answer', async () => {
    // Prepare
    ecs.on(DescribeTasksCommand).resolves({
      tasks: [
        ecsTask({
          lastStatus: 'STOPPED',
          desiredStatus: 'STOPPED',
          stoppedAt: new Date('2026-01-02T04:00:00.000Z'),
          stopCode: 'EssentialContainerExited',
          stoppedReason: 'Essential container in task exited',
          containers: [
            { name: 'sidecar', exitCode: 0 },
            { name: 'workspace', exitCode: 137 },
          ],
          attachments: [],
        }),
      ],
      failures: [],
    });

    // Act
    const info = await runtime().describeTask(TASK_ARN);

    // Assess
    expect(ecs.commandCalls(DescribeTasksCommand)[0]!.args[0].input).toEqual({
      cluster: 'berth',
      tasks: [TASK_ARN],
      include: ['TAGS'],
    });
    expect(info).toEqual({
      taskArn: TASK_ARN,
      containerId: 'ameliastamps.website.john',
      generation: 3,
      lastStatus: 'STOPPED',
      desiredStatus: 'STOPPED',
      startedAt: '2026-01-02T03:04:05.000Z',
      stoppedAt: '2026-01-02T04:00:00.000Z',
      stopCode: 'EssentialContainerExited',
      stoppedReason: 'Essential container in task exited',
      exitCode: 137,
      endpoint: undefined,
    });
  });

  it('answers undefined for a task ECS reports MISSING', async () => {
    // Prepare
    ecs
      .on(DescribeTasksCommand)
      .resolves({ tasks: [], failures: [{ arn: TASK_ARN, reason: 'MISSING' }] });

    // Act / Assess
    await expect(runtime().describeTask(TASK_ARN)).resolves.toBeUndefined();
  });

  it('leaves the generation undefined when the tag is not a number', async () => {
    // Prepare
    ecs
      .on(DescribeTasksCommand)
      .resolves({ tasks: [ecsTask({ tags: [{ key: 'Generation', value: 'x' }] })] });

    // Act
    const info = await runtime().describeTask(TASK_ARN);

    // Assess
    expect(info).toMatchObject({ containerId: undefined, generation: undefined });
  });

  it('turns SDK errors into domain errors', async () => {
    // Prepare
    ecs.on(DescribeTasksCommand).rejects(sdkError('ThrottlingException', 'Rate exceeded'));

    // Act / Assess
    await expect(runtime().describeTask(TASK_ARN)).rejects.toBeInstanceOf(UnavailableError);
  });
});

describe('EcsRuntime.stopTask', () => {
  it('sends the reason trimmed to the 255 characters ECS accepts', async () => {
    // Prepare
    ecs.on(StopTaskCommand).resolves({ task: ecsTask() });
    const reason = `manual:${'x'.repeat(300)}`;

    // Act
    await runtime().stopTask(TASK_ARN, reason);

    // Assess
    expect(ecs.commandCalls(StopTaskCommand)[0]!.args[0].input).toEqual({
      cluster: 'berth',
      task: TASK_ARN,
      reason: reason.slice(0, 255),
    });
  });

  it('treats a task ECS no longer knows as stopped', async () => {
    // Prepare
    ecs
      .on(StopTaskCommand)
      .rejects(
        new InvalidParameterException({
          message: 'The referenced task was not found.',
          $metadata: {},
        }),
      );

    // Act / Assess
    await expect(runtime().stopTask(TASK_ARN, 'idle')).resolves.toBeUndefined();
  });

  it('turns other SDK errors into domain errors', async () => {
    // Prepare
    ecs
      .on(StopTaskCommand)
      .rejectsOnce(new ServerException({ message: 'internal', $metadata: {} }))
      .rejectsOnce(
        new InvalidParameterException({ message: 'taskId length should be 32', $metadata: {} }),
      );

    // Act / Assess
    await expect(runtime().stopTask(TASK_ARN, 'idle')).rejects.toBeInstanceOf(UnavailableError);
    await expect(runtime().stopTask('bad', 'idle')).rejects.toBeInstanceOf(InvalidArgumentError);
  });
});

describe('EcsRuntime.listTasks', () => {
  it('reads every page, describes in batches of 100 and keeps only tasks berth manages', async () => {
    // Prepare
    const arns = Array.from(
      { length: 150 },
      (_, index) => `${TASK_ARN.slice(0, -3)}${String(index).padStart(3, '0')}`,
    );
    ecs
      .on(ListTasksCommand)
      .resolvesOnce({ taskArns: arns.slice(0, 100), nextToken: 'page-2' })
      .resolvesOnce({ taskArns: arns.slice(100) });
    ecs.on(DescribeTasksCommand).callsFake((input: { tasks: string[] }) => ({
      tasks: input.tasks.map((taskArn, index) =>
        ecsTask({
          taskArn,
          tags: index === 0 ? [{ key: 'ManagedBy', value: 'someone-else' }] : ecsTask().tags!,
        }),
      ),
      failures: [],
    }));

    // Act
    const tasks = await runtime().listTasks();

    // Assess
    expect(ecs.commandCalls(ListTasksCommand).map((call) => call.args[0].input)).toEqual([
      { cluster: 'berth', startedBy: 'berth', desiredStatus: 'RUNNING', maxResults: 100 },
      {
        cluster: 'berth',
        startedBy: 'berth',
        desiredStatus: 'RUNNING',
        maxResults: 100,
        nextToken: 'page-2',
      },
    ]);
    expect(ecs.commandCalls(DescribeTasksCommand).map((call) => call.args[0].input)).toEqual([
      { cluster: 'berth', tasks: arns.slice(0, 100), include: ['TAGS'] },
      { cluster: 'berth', tasks: arns.slice(100), include: ['TAGS'] },
    ]);
    expect(tasks.map((task) => task.taskArn)).toEqual([...arns.slice(1, 100), ...arns.slice(101)]);
    expect(tasks[0]).toMatchObject({
      containerId: SPEC.containerId,
      generation: 3,
      lastStatus: 'RUNNING',
    });
  });

  it('answers an empty list without describing anything when no task runs', async () => {
    // Prepare
    ecs.on(ListTasksCommand).resolves({ taskArns: [] });

    // Act
    const tasks = await runtime().listTasks();

    // Assess
    expect(tasks).toEqual([]);
    expect(ecs.commandCalls(DescribeTasksCommand)).toHaveLength(0);
  });

  it('turns SDK errors into domain errors', async () => {
    // Prepare
    ecs.on(ListTasksCommand).rejects(new ServerException({ message: 'internal', $metadata: {} }));

    // Act / Assess
    await expect(runtime().listTasks()).rejects.toBeInstanceOf(UnavailableError);
  });
});

describe('EcsRuntime.startPoolMember', () => {
  it('sends a RunTask with the pool tags, no ContainerId, its control queue and a token per (slot, generation)', async () => {
    // Prepare
    ecs.on(RunTaskCommand).resolves({
      tasks: [
        ecsTask({
          tags: [
            { key: 'ManagedBy', value: 'berth' },
            { key: 'PoolSlot', value: '2' },
            { key: 'Generation', value: '4' },
          ],
        }),
      ],
    });

    // Act
    const started = await runtime().startPoolMember({
      slot: 2,
      generation: 4,
      environment: { BERTH_POOL_CONTROL_QUEUE_URL: 'https://sqs/ctl' },
    });

    // Assess
    expect(started).toEqual({ taskArn: TASK_ARN });
    const calls = ecs.commandCalls(RunTaskCommand);
    expect(calls).toHaveLength(1);
    expect(calls[0]!.args[0].input).toEqual({
      cluster: 'berth',
      taskDefinition: 'berth-workspace:7',
      launchType: 'FARGATE',
      count: 1,
      networkConfiguration: {
        awsvpcConfiguration: {
          subnets: ['subnet-a', 'subnet-b'],
          securityGroups: ['sg-1'],
          assignPublicIp: 'DISABLED',
        },
      },
      overrides: {
        containerOverrides: [
          {
            name: 'workspace',
            environment: [{ name: 'BERTH_POOL_CONTROL_QUEUE_URL', value: 'https://sqs/ctl' }],
          },
        ],
      },
      tags: [
        { key: 'ManagedBy', value: 'berth' },
        { key: 'PoolSlot', value: '2' },
        { key: 'Generation', value: '4' },
      ],
      propagateTags: 'TASK_DEFINITION',
      enableECSManagedTags: true,
      startedBy: 'berth',
      group: 'berth',
      clientToken: createHash('sha256').update('~pool#2#4').digest('hex'),
    });
  });

  it('reads a pool task back with its slot and the member generation', async () => {
    // Prepare
    ecs.on(DescribeTasksCommand).resolves({
      tasks: [
        ecsTask({
          tags: [
            { key: 'ManagedBy', value: 'berth' },
            { key: 'PoolSlot', value: '2' },
            { key: 'Generation', value: '4' },
          ],
        }),
      ],
    });

    // Act
    const info = await runtime().describeTask(TASK_ARN);

    // Assess
    expect(info).toMatchObject({ containerId: undefined, generation: 4, poolSlot: 2 });
  });
});
