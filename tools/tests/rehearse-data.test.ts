/**
 * The rehearsal's tables, queues and topics come from the templates (tools/src/rehearse/
 * data.ts): what it maps, and the construct path it names for what it cannot.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { historyTableDefinition, tableDefinitions, webhookTableDefinition } from '@berth/dynamodb';
import {
  QUEUE_NAMES,
  TOPIC_NAME,
  WEBHOOK_EVENTS_DLQ,
  WEBHOOK_EVENTS_QUEUE,
} from '@berth/messaging';
import { UnmappableDataResourceError, planData } from '../src/rehearse/data.ts';
import { synthesizeApp } from '../src/synth.ts';
import { loadStacks } from '../src/rehearse/assembly.ts';
import { STACK, dataResources, workspaceContainer, writeAssembly } from './rehearse-fixture.ts';

const planOf = (data: Record<string, unknown>) =>
  planData(loadStacks(writeAssembly([workspaceContainer()], data)));

const refusal = (data: Record<string, unknown>): UnmappableDataResourceError => {
  try {
    planOf(data);
  } catch (error) {
    if (error instanceof UnmappableDataResourceError) return error;
    throw error;
  }
  throw new Error('the data was mapped');
};

type Resource = { Type: string; Properties: Record<string, unknown> };

describe('the data the rehearsal creates from the templates', () => {
  it('maps tables with their keys, indexes and TTL, and queues with their attributes and redrive', () => {
    // Act
    const plan = planOf(dataResources());

    // Assess
    const containers = plan.tables.find((t) => t.create.TableName === 'berth-containers');
    expect(containers?.constructPath).toBe(`${STACK}/containerTable`);
    expect(containers?.create.KeySchema).toEqual([
      { AttributeName: 'containerId', KeyType: 'HASH' },
    ]);
    expect(containers?.create.GlobalSecondaryIndexes?.map((index) => index.IndexName)).toEqual(
      expect.arrayContaining(['clientId-index', 'status-index']),
    );
    expect(containers?.ttlAttribute).toBe('expiresAt');
    const commands = plan.queues.find((q) => q.name === 'berth-lifecycle-commands');
    expect(commands).toMatchObject({
      attributes: { VisibilityTimeout: '60' },
      deadLetterQueue: 'berth-lifecycle-commands-dlq',
    });
    expect(JSON.parse(commands?.attributes['RedrivePolicy'] ?? '{}')).toEqual({
      deadLetterTargetArn: 'arn:aws:sqs:us-east-1:000000000000:berth-lifecycle-commands-dlq',
      maxReceiveCount: 5,
    });
    const reports = plan.queues.find((q) => q.name === 'berth-agent-reports');
    expect(reports).toMatchObject({ deadLetterQueue: 'berth-agent-reports-dlq' });
    expect(plan.queues).toHaveLength(6);
    expect(plan.topics).toEqual([
      { constructPath: `${STACK}/LifecycleTopic`, name: 'berth-lifecycle-events' },
    ]);
  });

  it('names the construct path of a table property it cannot play', () => {
    // Prepare
    const data = dataResources();
    const table = data['sessionTable'] as Resource;
    table.Properties['StreamSpecification'] = { StreamViewType: 'NEW_IMAGE' };

    // Act
    const error = refusal(data);

    // Assess
    expect(error.constructPath).toBe(`${STACK}/sessionTable`);
    expect(error.message).toMatch(/AWS::DynamoDB::Table property StreamSpecification/);
  });

  it('names the construct path of a queue whose redrive policy sends nowhere the templates make', () => {
    // Prepare
    const data = dataResources();
    delete data['TaskEventsDlq'];
    (data['TaskEventsQueue'] as Resource).Properties['RedrivePolicy'] = {
      deadLetterTargetArn: 'arn:aws:sqs:us-east-1:000000000000:elsewhere',
      maxReceiveCount: 5,
    };

    // Act
    const error = refusal(data);

    // Assess
    expect(error.constructPath).toBe(`${STACK}/TaskEventsQueue`);
    expect(error.message).toContain('elsewhere');
  });

  it('names the construct path of a queue without a name and of a subscription that is not a queue', () => {
    // Prepare
    const unnamed = dataResources();
    delete (unnamed['LifecycleDlq'] as Resource).Properties['QueueName'];
    const email = {
      ...dataResources(),
      Mail: {
        Type: 'AWS::SNS::Subscription',
        Properties: {
          Protocol: 'email',
          Endpoint: 'ops@example.com',
          TopicArn: { Ref: 'LifecycleTopic' },
        },
        Metadata: { 'aws:cdk:path': `${STACK}/Mail/Resource` },
      },
    };

    // Act + Assess
    expect(refusal(unnamed)).toMatchObject({ constructPath: `${STACK}/LifecycleDlq` });
    expect(refusal(unnamed).message).toMatch(/has no QueueName/);
    expect(refusal(email)).toMatchObject({ constructPath: `${STACK}/Mail` });
    expect(refusal(email).message).toMatch(/protocol email/);
  });

  it("maps the synthesized data stack to the local stack's own tables, queues and topic", async () => {
    // Prepare: the app as a deployment synthesizes it.
    const out = mkdtempSync(join(tmpdir(), 'berth-data-synth-'));
    try {
      await synthesizeApp(out, { env: { CDK_DEFAULT_REGION: 'us-east-1' } });

      // Act
      const plan = planData(loadStacks(out));

      // Assess: the rehearsal's tables are the ones the local stack makes (ensureTables),
      // index for index, so both run the services against the same schema.
      const local = tableDefinitions({
        containerTable: 'berth-containers',
        sessionTable: 'berth-sessions',
      });
      const shape = (table: {
        KeySchema?: unknown;
        GlobalSecondaryIndexes?: { IndexName?: string; KeySchema?: unknown }[];
      }) => ({
        key: table.KeySchema,
        indexes: Object.fromEntries(
          (table.GlobalSecondaryIndexes ?? []).map((index) => [index.IndexName, index.KeySchema]),
        ),
      });
      for (const definition of [
        ...Object.values(local),
        historyTableDefinition('berth-history'),
        webhookTableDefinition('berth-webhooks'),
      ]) {
        const synthesized = plan.tables.find((t) => t.create.TableName === definition.TableName);
        expect(synthesized && shape(synthesized.create)).toEqual(shape(definition));
        expect(synthesized?.ttlAttribute).toBe('expiresAt');
      }
      expect(plan.queues.map((queue) => queue.name).sort()).toEqual(
        // The webhook service's subscription is its own (not one every service looks up).
        [...Object.values(QUEUE_NAMES), WEBHOOK_EVENTS_QUEUE, WEBHOOK_EVENTS_DLQ].sort(),
      );
      expect(plan.topics.map((topic) => topic.name)).toContain(TOPIC_NAME);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  }, 300_000);
});
