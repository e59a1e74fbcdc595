/**
 * The IAM proof end to end: the real CDK app synthesized, a session service wired as on ECS
 * (no bootstrap, the topic ARN from its environment) making real calls against DynamoDB
 * Local and fauxqs with the recorder on, and iam-simulate deciding each call against the
 * synthesized task role. A grant removed from the assembly makes the proof fail and name it.
 */
import { jest } from '@jest/globals';
import { ReceiveMessageCommand } from '@aws-sdk/client-sqs';
import { silentLogger } from '@berth/core';
import { loadConfig } from '@berth/domain';
import { describeAwsCall, wire } from '@berth/platform';
import { synthesizeApp } from '../src/synth.ts';
import { localAwsEnvironment, startDynamoDbLocal, startFauxqs, type Engine } from '@berth/testing';
import { execFile } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { AssemblyError } from '../src/iam/assembly.ts';
import { CallLogError, proveCalls } from '../src/iam/prove.ts';
import { formatIamReport } from '../src/iam/report.ts';
import { runChecks } from '../src/rehearse/checks.ts';

jest.setTimeout(900_000);

const run = promisify(execFile);
const ROOT = resolve(import.meta.dirname, '../..');
const NODE = join(ROOT, 'node_modules/.bin/node');
const ACCOUNT = '123456789012';
/** The region infra synthesizes for by default (infra/src/config.ts). */
const REGION = 'us-east-1';

let engines: Engine[] = [];
let assemblyDir = '';
let sessionLog = '';
const work = mkdtempSync(join(tmpdir(), 'berth-iam-proof-'));

async function synthesize(outdir: string): Promise<void> {
  await synthesizeApp(outdir, { env: { CDK_DEFAULT_REGION: REGION } });
}

/** What the session service does with AWS on a quiet day, recorded as on ECS. */
async function recordSessionScenario(log: string): Promise<void> {
  const env = {
    ...process.env,
    ...localAwsEnvironment(engines[0]!.endpoint, engines[1]!.endpoint),
  };
  const config = loadConfig({ ...env, BERTH_DATA_DIR: work });
  const saved = process.env;
  // The SDK clients read endpoints and region from process.env.
  process.env = env;
  // The data stack's part, unrecorded: tables, queues and the topic exist before any service.
  const setup = await wire(config, { service: 'setup', log: silentLogger, bootstrap: true });
  setup.close();
  process.env = {
    ...env,
    BERTH_AWS_CALL_LOG: log,
    BERTH_REHEARSAL_ACCOUNT: ACCOUNT,
    BERTH_REHEARSAL_REGION: REGION,
    BERTH_LIFECYCLE_TOPIC_ARN: setup.messaging.topicArn,
  };
  try {
    // As on ECS: the topic's ARN comes from the task definition's environment.
    const sessionConfig = loadConfig({
      ...process.env,
      BERTH_DATA_DIR: work,
    });
    const wiring = await wire(sessionConfig, {
      service: 'session',
      log: silentLogger,
      bootstrap: false,
    });
    await wiring.deps.store.getContainer('acme.website.ann');
    await wiring.deps.store.listSessionsByContainer('acme.website.ann');
    await wiring.deps.publisher.ping();
    const urls = await wiring.deps.queues.create('acme.website.ann', 1);
    await wiring.deps.queues.send(urls.inputQueueUrl, { type: 'thread.open', threadId: 't1' });
    await wiring.deps.queues.delete(urls);
    await wiring.clients.sqs.send(
      new ReceiveMessageCommand({
        QueueUrl: wiring.messaging.lifecycleCommandsUrl,
        WaitTimeSeconds: 0,
      }),
    );
    wiring.close();
  } finally {
    process.env = saved;
  }
}

/** A copy of the assembly with one statement (by Sid) taken out of one stack's roles. */
function withoutStatement(source: string, stack: string, sid: string): string {
  const copy = mkdtempSync(join(tmpdir(), 'berth-iam-removed-'));
  cpSync(source, copy, { recursive: true });
  const file = join(copy, `${stack}.template.json`);
  const template = JSON.parse(readFileSync(file, 'utf8')) as {
    Resources: Record<
      string,
      {
        Type: string;
        Properties: { Policies?: { PolicyDocument: { Statement: { Sid?: string }[] } }[] };
      }
    >;
  };
  let removed = 0;
  for (const resource of Object.values(template.Resources)) {
    for (const policy of resource.Properties?.Policies ?? []) {
      const before = policy.PolicyDocument.Statement.length;
      policy.PolicyDocument.Statement = policy.PolicyDocument.Statement.filter(
        (s) => s.Sid !== sid,
      );
      removed += before - policy.PolicyDocument.Statement.length;
    }
  }
  if (removed === 0) throw new Error(`no statement ${sid} in ${stack}`);
  writeFileSync(file, JSON.stringify(template));
  return copy;
}

beforeAll(async () => {
  assemblyDir = join(work, 'cdk.out');
  const [dynamodb, fauxqs] = await Promise.all([
    startDynamoDbLocal(),
    startFauxqs(),
    synthesize(assemblyDir),
  ]);
  engines = [dynamodb, fauxqs];
  sessionLog = join(work, 'session.jsonl');
  await recordSessionScenario(sessionLog);
});

afterAll(async () => {
  await Promise.all(engines.map((engine) => engine.stop()));
});

describe('proving recorded calls against the synthesized policies', () => {
  it('allows every call the session service made, and lists what it was granted and did not use', async () => {
    const report = await proveCalls({ assemblyDir, callLogFiles: [sessionLog] });
    expect(report.denied).toEqual([]);
    expect(report.unmapped).toEqual([]);
    expect(report.ok).toBe(true);
    const session = report.services.find((service) => service.service === 'session');
    expect(session?.actions).toEqual(
      expect.arrayContaining([
        'dynamodb:GetItem',
        'dynamodb:Query',
        'sns:GetTopicAttributes',
        'sqs:CreateQueue',
        'sqs:TagQueue',
        'sqs:GetQueueUrl',
        'sqs:ReceiveMessage',
      ]),
    );
    // The scenario never starts a task: RunTask is granted and, here, unused.
    expect(report.unused).toContainEqual(
      expect.objectContaining({
        service: 'session',
        action: 'ecs:RunTask',
        sid: 'StartWorkspaceTasks',
      }),
    );
  });

  it('allows a RunTask as the ECS runtime sends it, and denies ECS Exec or a larger task', async () => {
    const target = { partition: 'aws', region: REGION, account: ACCOUNT };
    const runTask = (extra: Record<string, unknown>): string =>
      JSON.stringify(
        describeAwsCall(
          {
            service: 'session',
            clientName: 'ECSClient',
            commandName: 'RunTaskCommand',
            input: {
              cluster: 'berth',
              taskDefinition: 'berth-workspace',
              overrides: { containerOverrides: [{ name: 'workspace', environment: [] }] },
              tags: [{ key: 'ManagedBy', value: 'berth' }],
              ...extra,
            },
            output: { tasks: [{ taskArn: 'arn:aws:ecs:us-east-1:000000000000:task/berth/t1' }] },
          },
          target,
        ),
      );
    const plain = join(work, 'run-task.jsonl');
    writeFileSync(plain, `${runTask({})}\n`);
    const allowed = await proveCalls({ assemblyDir, callLogFiles: [plain] });
    expect(allowed.denied).toEqual([]);
    // The task definition's roles are passed too, and allowed.
    expect(allowed.services.find((s) => s.service === 'session')?.actions).toEqual(
      expect.arrayContaining(['ecs:RunTask', 'ecs:TagResource', 'iam:PassRole']),
    );

    const risky = join(work, 'run-task-risky.jsonl');
    writeFileSync(
      risky,
      [
        runTask({ enableExecuteCommand: true }),
        runTask({ overrides: { cpu: '4096', containerOverrides: [] } }),
      ].join('\n'),
    );
    const denied = await proveCalls({ assemblyDir, callLogFiles: [risky] });
    expect(denied.denied.map((call) => [call.action, call.decision])).toEqual([
      ['ecs:RunTask', 'ExplicitlyDenied'],
      ['ecs:RunTask', 'ExplicitlyDenied'],
    ]);
    expect(denied.denied.map((call) => call.reason).join(' ')).toMatch(
      /NeverExecIntoWorkspaceTasks.*NeverResizeWorkspaceTasks/,
    );
  });

  it("allows closing an abandoned start as discovery and session do it, and denies the session's StopTask", async () => {
    // ContainerService.closeAbandoned lists berth's tasks (ListTasks, then DescribeTasks) and
    // stops a live one of that generation; a rehearsal never leaves a start abandoned.
    const target = { partition: 'aws', region: REGION, account: ACCOUNT };
    const task = 'arn:aws:ecs:us-east-1:000000000000:task/berth/abc123';
    const call = (service: string, commandName: string, input: Record<string, unknown>) =>
      JSON.stringify(
        describeAwsCall({ service, clientName: 'ECSClient', commandName, input }, target),
      );
    const closing = (service: string): string[] => [
      call(service, 'ListTasksCommand', {
        cluster: 'berth',
        startedBy: 'berth',
        desiredStatus: 'RUNNING',
      }),
      call(service, 'DescribeTasksCommand', { cluster: 'berth', tasks: [task], include: ['TAGS'] }),
      call(service, 'StopTaskCommand', { cluster: 'berth', task, reason: 'berth: start_failed' }),
    ];
    const log = join(work, 'close-abandoned.jsonl');
    writeFileSync(log, `${[...closing('discovery'), ...closing('session')].join('\n')}\n`);

    const report = await proveCalls({ assemblyDir, callLogFiles: [log] });

    expect(report.services.find((s) => s.service === 'discovery')?.actions).toEqual([
      'ecs:DescribeTasks',
      'ecs:ListTasks',
      'ecs:StopTask',
    ]);
    expect(report.denied.map((d) => [d.service, d.action, d.resource])).toEqual([
      ['session', 'ecs:StopTask', `arn:aws:ecs:${REGION}:${ACCOUNT}:task/berth/abc123`],
    ]);
  });

  it('with the pool on, lets discovery hand a claimed member its identity; it writes to input queues only (a revert), never to an output or shared queue', async () => {
    const pooled = join(work, 'cdk.out.pool');
    await synthesizeApp(pooled, {
      env: { CDK_DEFAULT_REGION: REGION },
      context: { pool: { size: 1 } },
    });
    const target = { partition: 'aws', region: REGION, account: ACCOUNT };
    const send = (queueName: string): string =>
      JSON.stringify(
        describeAwsCall(
          {
            service: 'discovery',
            clientName: 'SQSClient',
            commandName: 'SendMessageCommand',
            input: {
              QueueUrl: `http://sqs.us-east-1.localhost:4566/000000000000/${queueName}`,
              MessageBody: '{}',
            },
          },
          target,
        ),
      );
    const log = join(work, 'pool-hand-over.jsonl');
    const queues = [
      'berth-pool-s0-g1-ctl',
      'berth-acme-site-ann-1-in',
      'berth-acme-site-ann-1-out',
      'berth-lifecycle-commands',
    ];
    writeFileSync(log, queues.map((name) => `${send(name)}\n`).join(''));
    const deniedQueues = (report: Awaited<ReturnType<typeof proveCalls>>) =>
      report.denied.map((d) => [d.action, d.resource.split(':').pop()]);

    const report = await proveCalls({ assemblyDir: pooled, callLogFiles: [log] });
    const withoutPool = await proveCalls({ assemblyDir, callLogFiles: [log] });

    expect(deniedQueues(report)).toEqual([
      ['sqs:SendMessage', 'berth-acme-site-ann-1-out'],
      ['sqs:SendMessage', 'berth-lifecycle-commands'],
    ]);
    expect(deniedQueues(withoutPool)).toEqual([
      ['sqs:SendMessage', 'berth-pool-s0-g1-ctl'],
      ['sqs:SendMessage', 'berth-acme-site-ann-1-out'],
      ['sqs:SendMessage', 'berth-lifecycle-commands'],
    ]);
  });

  it('fails and names the service, action, resource and missing statement when a grant is removed', async () => {
    const broken = withoutStatement(assemblyDir, 'BerthSessionStack', 'QueryBerthIndexes');
    const report = await proveCalls({ assemblyDir: broken, callLogFiles: [sessionLog] });
    expect(report.ok).toBe(false);
    expect(report.denied).toEqual([
      expect.objectContaining({
        service: 'session',
        action: 'dynamodb:Query',
        resource: `arn:aws:dynamodb:${REGION}:${ACCOUNT}:table/berth-sessions/index/container-index`,
        decision: 'ImplicitlyDenied',
        missingStatement: {
          Effect: 'Allow',
          Action: 'dynamodb:Query',
          Resource: `arn:aws:dynamodb:${REGION}:${ACCOUNT}:table/berth-sessions/index/container-index`,
        },
      }),
    ]);
    expect(report.denied[0]?.reason).toMatch(
      /no statement of BerthSessionStack\/TaskRole.* allows dynamodb:Query/,
    );

    const cli = await run(NODE, [join(ROOT, 'tools/src/iam/main.ts'), broken, sessionLog]).then(
      () => ({ code: 0, stdout: '' }),
      (error: { code: number; stdout: string }) => error,
    );
    expect(cli.code).toBe(1);
    expect(cli.stdout).toMatch(/DENIED:\n {2}session: dynamodb:Query on \S+index\/container-index/);
    expect(formatIamReport(report)).toMatch(/IAM proof FAILED: 1 denied/);
  });

  it("fails the rehearsal's checks naming service, action and resource when a grant is removed", async () => {
    // Prepare: the rehearsal's service directory, with the session's recorded calls.
    const serviceDir = join(work, 'services');
    mkdirSync(serviceDir, { recursive: true });
    cpSync(sessionLog, join(serviceDir, 'session.jsonl'));
    const said: string[] = [];
    const check = (dir: string) =>
      runChecks({
        serviceDir,
        assemblyDir: dir,
        services: ['session'],
        say: (line) => said.push(line),
      });

    // Act
    const intact = await check(assemblyDir);
    const broken = await check(
      withoutStatement(assemblyDir, 'BerthSessionStack', 'QueryBerthIndexes'),
    );

    // Assess
    expect(intact).toEqual([]);
    expect(broken).toEqual([
      expect.stringMatching(
        new RegExp(
          `^IAM denied: session dynamodb:Query on arn:aws:dynamodb:${REGION}:${ACCOUNT}:table/berth-sessions/index/container-index`,
        ),
      ),
    ]);
    expect(said.join('\n')).toMatch(/IAM proof FAILED: 1 denied/);
  });

  it('refuses a log of a service no task definition runs, and a directory that is no assembly', async () => {
    const stray = join(work, 'stray.jsonl');
    writeFileSync(
      stray,
      `${JSON.stringify({ service: 'billing', operation: 'sqs:SendMessage', iam: [{ action: 'sqs:SendMessage', resource: `arn:aws:sqs:${REGION}:${ACCOUNT}:q` }] })}\n`,
    );
    await expect(proveCalls({ assemblyDir, callLogFiles: [stray] })).rejects.toThrow(CallLogError);
    await expect(proveCalls({ assemblyDir, callLogFiles: [stray] })).rejects.toThrow(
      /calls of service "billing" were recorded, but no task definition of the assembly runs it/,
    );
    await expect(proveCalls({ assemblyDir: work, callLogFiles: [sessionLog] })).rejects.toThrow(
      AssemblyError,
    );
    const garbled = join(work, 'garbled.jsonl');
    writeFileSync(garbled, 'not json\n');
    await expect(proveCalls({ assemblyDir, callLogFiles: [garbled] })).rejects.toThrow(
      /garbled.jsonl:1/,
    );
  });
});
