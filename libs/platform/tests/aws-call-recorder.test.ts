/**
 * The recorder on real clients: DynamoDB Local and fauxqs answer, the records carry the
 * deployed stack's ARNs. ECS has no local engine here; its client is real and only its
 * transport is cut short.
 */
import { jest } from '@jest/globals';
import { ECSClient, RunTaskCommand } from '@aws-sdk/client-ecs';
import { SQSClient, CreateQueueCommand, SendMessageCommand } from '@aws-sdk/client-sqs';
import { silentLogger } from '@berth/core';
import { loadConfig } from '@berth/domain';
import { localAwsEnvironment, startDynamoDbLocal, startFauxqs, type Engine } from '@berth/testing';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  AwsCallCounter,
  awsCallRecordingFromEnv,
  recordAwsCalls,
  recordAwsCallsFromEnv,
  wire,
  type AwsCallRecord,
  type DeployTarget,
} from '../src/index.ts';

jest.setTimeout(120_000);

const target: DeployTarget = { partition: 'aws', region: 'eu-west-1', account: '123456789012' };
let engines: Engine[] = [];
let awsEnv: Record<string, string> = {};

beforeAll(async () => {
  engines = await Promise.all([startDynamoDbLocal(), startFauxqs()]);
  awsEnv = localAwsEnvironment(engines[0]!.endpoint, engines[1]!.endpoint);
  Object.assign(process.env, awsEnv);
});

afterAll(async () => {
  await Promise.all(engines.map((engine) => engine.stop()));
});

function readLog(path: string): AwsCallRecord[] {
  return readFileSync(path, 'utf8')
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as AwsCallRecord);
}

describe('recording from the environment', () => {
  it('writes one JSON line per call of every client wire() builds, with deployed ARNs', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'berth-calls-'));
    const log = join(dir, 'session.jsonl');
    const saved = { ...process.env };
    Object.assign(process.env, {
      BERTH_AWS_CALL_LOG: log,
      BERTH_REHEARSAL_ACCOUNT: target.account,
      BERTH_REHEARSAL_REGION: target.region,
    });
    try {
      const config = loadConfig({ ...process.env, BERTH_DATA_DIR: dir });
      const wiring = await wire(config, { service: 'session', log: silentLogger, bootstrap: true });
      await wiring.deps.store.getContainer('acme.website.ann');
      await wiring.deps.publisher.ping();
      wiring.close();
    } finally {
      process.env = saved;
    }
    const records = readLog(log);
    expect(new Set(records.map((record) => record.service))).toEqual(new Set(['session']));
    expect(records.filter((record) => record.unmapped)).toEqual([]);
    const checks = records.flatMap((record) => record.iam);
    expect(checks).toContainEqual({
      action: 'dynamodb:GetItem',
      resource: 'arn:aws:dynamodb:eu-west-1:123456789012:table/berth-containers',
    });
    expect(checks).toContainEqual({
      action: 'sqs:CreateQueue',
      resource: 'arn:aws:sqs:eu-west-1:123456789012:berth-lifecycle-commands',
    });
    expect(checks).toContainEqual({
      action: 'sns:CreateTopic',
      resource: 'arn:aws:sns:eu-west-1:123456789012:berth-lifecycle-events',
    });
    // Nothing of the emulators' account or region leaks into a resource.
    expect(checks.filter((check) => /000000000000|us-east-1/.test(check.resource))).toEqual([]);
  });

  it('installs nothing when BERTH_AWS_CALL_LOG is unset', () => {
    const sqs = new SQSClient({});
    recordAwsCallsFromEnv('reaper', [sqs], { AWS_REGION: 'eu-west-1' });
    expect(sqs.middlewareStack.identify().join(' ')).not.toMatch(/berthAwsCallRecorder/);
    expect(awsCallRecordingFromEnv({})).toBeUndefined();
    sqs.destroy();
  });

  it('refuses a call log without the deployed account, naming the variable', () => {
    expect(() => awsCallRecordingFromEnv({ BERTH_AWS_CALL_LOG: '/tmp/x.jsonl' })).toThrow(
      /BERTH_REHEARSAL_ACCOUNT is required with BERTH_AWS_CALL_LOG/,
    );
    expect(() =>
      awsCallRecordingFromEnv({
        BERTH_AWS_CALL_LOG: '/tmp/x.jsonl',
        BERTH_REHEARSAL_ACCOUNT: '12',
      }),
    ).toThrow(/BERTH_REHEARSAL_ACCOUNT "12" is not a 12-digit account id/);
    expect(() =>
      awsCallRecordingFromEnv({
        BERTH_AWS_CALL_LOG: '/tmp/x.jsonl',
        BERTH_REHEARSAL_ACCOUNT: target.account,
        BERTH_REHEARSAL_REGION: 'mars',
      }),
    ).toThrow(/region "mars" is not an AWS region name/);
  });
});

describe('counting calls in memory', () => {
  it('counts SDK calls per operation and authorizations per action, failed calls too', async () => {
    const counter = new AwsCallCounter();
    const sqs = recordAwsCalls(new SQSClient({ useQueueUrlAsEndpoint: false }), {
      service: 'bench',
      sink: counter,
      target,
    });
    const { QueueUrl } = await sqs.send(new CreateQueueCommand({ QueueName: 'berth-count-me' }));
    await sqs.send(new SendMessageCommand({ QueueUrl, MessageBody: 'one' }));
    await sqs.send(new SendMessageCommand({ QueueUrl, MessageBody: 'two' }));
    await expect(
      sqs.send(new SendMessageCommand({ QueueUrl: `${QueueUrl}-missing`, MessageBody: 'x' })),
    ).rejects.toThrow();
    sqs.destroy();
    expect(counter.byOperation()).toEqual({ 'sqs:CreateQueue': 1, 'sqs:SendMessage': 3 });
    expect(counter.byAction()).toEqual({ 'sqs:CreateQueue': 1, 'sqs:SendMessage': 3 });
    expect(counter.total()).toBe(4);
    counter.reset();
    expect(counter.total()).toBe(0);
  });

  it('records an ECS RunTask once, with the started task as the tag resource', async () => {
    const records: AwsCallRecord[] = [];
    const ecs = new ECSClient({ region: 'us-east-1', endpoint: 'http://127.0.0.1:9' });
    recordAwsCalls(ecs, {
      service: 'discovery',
      sink: { record: (call) => records.push(call) },
      target,
    });
    // Cut the transport short: the recorder sits above it and sees the parsed output.
    ecs.middlewareStack.add(
      () => () =>
        Promise.resolve({
          output: {
            tasks: [{ taskArn: 'arn:aws:ecs:us-east-1:000000000000:task/berth/abc' }],
            $metadata: {},
          },
          response: {},
        }),
      { step: 'build', name: 'cutShort' },
    );
    await ecs.send(
      new RunTaskCommand({
        cluster: 'berth',
        taskDefinition: 'berth-workspace',
        tags: [{ key: 'ManagedBy', value: 'berth' }],
      }),
    );
    ecs.destroy();
    expect(records).toHaveLength(1);
    expect(records[0]).toMatchObject({
      service: 'discovery',
      operation: 'ecs:RunTask',
      iam: [
        {
          action: 'ecs:RunTask',
          context: { 'ecs:cluster': 'arn:aws:ecs:eu-west-1:123456789012:cluster/berth' },
        },
        {
          action: 'ecs:TagResource',
          resource: 'arn:aws:ecs:eu-west-1:123456789012:task/berth/abc',
        },
      ],
    });
  });
});
