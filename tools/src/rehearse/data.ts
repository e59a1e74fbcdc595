/**
 * The data the rehearsal's services use, made from the synthesized templates, not from the
 * local stack's own definitions: every `AWS::DynamoDB::Table` (key schema, attributes, global
 * secondary indexes, TTL), `AWS::SQS::Queue` (name, attributes, redrive policy),
 * `AWS::SNS::Topic` and `AWS::SNS::Subscription` of the cloud assembly is created in DynamoDB
 * Local and fauxqs as CloudFormation would create it. So a template mistake (an index the
 * code queries but the table lacks, a queue name the services do not look up, a visibility
 * timeout below a consumer's heartbeat) fails the rehearsal. A property with behaviour the
 * rehearsal cannot reproduce is an error naming the construct path, never skipped; properties
 * without behaviour here (tags, encryption at rest, backups, deletion protection) are listed.
 */
import {
  CreateTableCommand,
  UpdateTimeToLiveCommand,
  type CreateTableCommandInput,
  type DynamoDBClient,
  type GlobalSecondaryIndex,
  type KeySchemaElement,
  type AttributeDefinition,
} from '@aws-sdk/client-dynamodb';
import { CreateTopicCommand, SubscribeCommand, type SNSClient } from '@aws-sdk/client-sns';
import { CreateQueueCommand, GetQueueAttributesCommand, type SQSClient } from '@aws-sdk/client-sqs';
import { waitUntilTableExists } from '@aws-sdk/client-dynamodb';
import { Resolver, UnresolvableValueError, type StackTemplate } from './intrinsics.ts';

/** A table, queue, topic or subscription of the templates that the rehearsal cannot create. */
export class UnmappableDataResourceError extends Error {
  readonly constructPath: string;

  constructor(constructPath: string, reason: string) {
    super(`${constructPath}: ${reason}`);
    this.name = 'UnmappableDataResourceError';
    this.constructPath = constructPath;
  }
}

export interface TablePlan {
  constructPath: string;
  create: CreateTableCommandInput & { TableName: string };
  ttlAttribute: string | undefined;
}

export interface QueuePlan {
  constructPath: string;
  name: string;
  /** SQS attributes, the redrive policy's target still as the template's ARN. */
  attributes: Record<string, string>;
  /** The queue the redrive policy sends to, by name (it must be a queue of the templates). */
  deadLetterQueue: string | undefined;
}

export interface TopicPlan {
  constructPath: string;
  name: string;
}

export interface SubscriptionPlan {
  constructPath: string;
  topicName: string;
  queueName: string;
  attributes: Record<string, string>;
}

export interface DataPlan {
  tables: TablePlan[];
  queues: QueuePlan[];
  topics: TopicPlan[];
  subscriptions: SubscriptionPlan[];
}

type Props = Record<string, unknown>;
const asProps = (value: unknown): Props =>
  value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Props) : {};
const asList = (value: unknown): unknown[] => (Array.isArray(value) ? value : []);
/** A scalar as CloudFormation would pass it on; anything else as JSON. */
const text = (value: unknown): string =>
  typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean'
    ? String(value)
    : JSON.stringify(value);

/** Properties that change nothing a service can observe on an emulator. */
const WITHOUT_LOCAL_BEHAVIOUR: Readonly<Record<string, readonly string[]>> = {
  'AWS::DynamoDB::Table': [
    'Tags',
    'DeletionProtectionEnabled',
    'PointInTimeRecoverySpecification',
    'SSESpecification',
    'ContributorInsightsSpecification',
    'TableClass',
  ],
  'AWS::SQS::Queue': [
    'Tags',
    'SqsManagedSseEnabled',
    'KmsMasterKeyId',
    'KmsDataKeyReusePeriodSeconds',
  ],
  'AWS::SNS::Topic': ['Tags', 'KmsMasterKeyId', 'DisplayName'],
  'AWS::SNS::Subscription': [],
};

/** CloudFormation queue properties that are SQS attributes of the same name. */
const QUEUE_ATTRIBUTES = [
  'VisibilityTimeout',
  'MessageRetentionPeriod',
  'DelaySeconds',
  'MaximumMessageSize',
  'ReceiveMessageWaitTimeSeconds',
  'FifoQueue',
  'ContentBasedDeduplication',
] as const;

const pathOf = (stack: StackTemplate, logicalId: string): string => {
  const path = stack.template.Resources?.[logicalId]?.Metadata?.['aws:cdk:path'];
  return typeof path === 'string'
    ? path.replace(/\/Resource$/, '')
    : `${stack.stackName}/${logicalId}`;
};

export function planData(stacks: readonly StackTemplate[]): DataPlan {
  const resolver = new Resolver(stacks);
  const plan: DataPlan = { tables: [], queues: [], topics: [], subscriptions: [] };
  for (const stack of stacks) {
    for (const [logicalId, resource] of Object.entries(stack.template.Resources ?? {})) {
      const known = WITHOUT_LOCAL_BEHAVIOUR[resource.Type];
      if (known === undefined) continue;
      const constructPath = pathOf(stack, logicalId);
      const fail = (reason: string): never => {
        throw new UnmappableDataResourceError(constructPath, reason);
      };
      let props: Props;
      try {
        props = asProps(resolver.resolve(stack, resource.Properties ?? {}, constructPath));
      } catch (error) {
        if (error instanceof UnresolvableValueError) return fail(error.message);
        throw error;
      }
      const used = new Set<string>(known);
      const take = (name: string): unknown => {
        used.add(name);
        return props[name];
      };
      const name = (property: string): string => {
        const value = take(property);
        if (typeof value !== 'string' || value === '')
          fail(`has no ${property}: the services find it by a fixed name`);
        return value as string;
      };
      switch (resource.Type) {
        case 'AWS::DynamoDB::Table':
          plan.tables.push(planTable(constructPath, name('TableName'), take, fail));
          break;
        case 'AWS::SQS::Queue':
          plan.queues.push(planQueue(constructPath, name('QueueName'), take, fail));
          break;
        case 'AWS::SNS::Topic':
          plan.topics.push({ constructPath, name: name('TopicName') });
          break;
        case 'AWS::SNS::Subscription':
          plan.subscriptions.push(planSubscription(constructPath, take, fail));
          break;
        default:
          break;
      }
      const unmapped = Object.keys(props).filter((property) => !used.has(property));
      if (unmapped.length > 0)
        fail(`${resource.Type} property ${unmapped.join(', ')} is not one the rehearsal can play`);
    }
  }
  const queueNames = new Set(plan.queues.map((queue) => queue.name));
  for (const queue of plan.queues) {
    if (queue.deadLetterQueue !== undefined && !queueNames.has(queue.deadLetterQueue)) {
      throw new UnmappableDataResourceError(
        queue.constructPath,
        `its redrive policy sends to ${queue.deadLetterQueue}, which no template creates`,
      );
    }
  }
  const topicNames = new Set(plan.topics.map((topic) => topic.name));
  for (const subscription of plan.subscriptions) {
    if (!topicNames.has(subscription.topicName) || !queueNames.has(subscription.queueName)) {
      throw new UnmappableDataResourceError(
        subscription.constructPath,
        `subscribes ${subscription.queueName} to ${subscription.topicName}; the templates create no such ${topicNames.has(subscription.topicName) ? 'queue' : 'topic'}`,
      );
    }
  }
  return plan;
}

function planTable(
  constructPath: string,
  tableName: string,
  take: (name: string) => unknown,
  fail: (reason: string) => never,
): TablePlan {
  const billing = take('BillingMode') ?? 'PROVISIONED';
  if (billing !== 'PAY_PER_REQUEST')
    fail(`BillingMode ${text(billing)}: the rehearsal plays on-demand tables only`);
  const keySchema = (value: unknown, where: string): KeySchemaElement[] => {
    const elements = asList(value).map(asProps);
    if (elements.length === 0) fail(`${where} has no KeySchema`);
    return elements.map((element) => {
      const keyType = element['KeyType'];
      if (
        typeof element['AttributeName'] !== 'string' ||
        (keyType !== 'HASH' && keyType !== 'RANGE')
      )
        fail(`${where} has a key element that is not {AttributeName, KeyType HASH|RANGE}`);
      return { AttributeName: element['AttributeName'], KeyType: keyType as 'HASH' };
    });
  };
  const attributes = asList(take('AttributeDefinitions'))
    .map(asProps)
    .map((attribute): AttributeDefinition => ({
      AttributeName: String(attribute['AttributeName']),
      AttributeType: String(attribute['AttributeType']) as 'S',
    }));
  const indexes = asList(take('GlobalSecondaryIndexes'))
    .map(asProps)
    .map((index): GlobalSecondaryIndex => {
      const indexName = String(index['IndexName']);
      const extra = Object.keys(index).filter(
        (key) =>
          !['IndexName', 'KeySchema', 'Projection', 'ContributorInsightsSpecification'].includes(
            key,
          ),
      );
      if (extra.length > 0)
        fail(
          `global secondary index ${indexName} has ${extra.join(', ')}, which the rehearsal cannot play`,
        );
      const projection = asProps(index['Projection']);
      return {
        IndexName: indexName,
        KeySchema: keySchema(index['KeySchema'], `index ${indexName}`),
        Projection: {
          ProjectionType: text(projection['ProjectionType'] ?? 'ALL') as 'ALL',
          ...(projection['NonKeyAttributes'] === undefined
            ? {}
            : { NonKeyAttributes: asList(projection['NonKeyAttributes']).map(String) }),
        },
      };
    });
  if (take('LocalSecondaryIndexes') !== undefined)
    fail('LocalSecondaryIndexes are not played by the rehearsal');
  const ttl = asProps(take('TimeToLiveSpecification'));
  const ttlAttribute =
    ttl['Enabled'] === true || ttl['Enabled'] === 'true' ? String(ttl['AttributeName']) : undefined;
  return {
    constructPath,
    create: {
      TableName: tableName,
      BillingMode: 'PAY_PER_REQUEST',
      KeySchema: keySchema(take('KeySchema'), 'the table'),
      AttributeDefinitions: attributes,
      ...(indexes.length > 0 ? { GlobalSecondaryIndexes: indexes } : {}),
    },
    ttlAttribute,
  };
}

function planQueue(
  constructPath: string,
  queueName: string,
  take: (name: string) => unknown,
  fail: (reason: string) => never,
): QueuePlan {
  const attributes: Record<string, string> = {};
  for (const attribute of QUEUE_ATTRIBUTES) {
    const value = take(attribute);
    if (value !== undefined) attributes[attribute] = text(value);
  }
  let deadLetterQueue: string | undefined;
  const redrive = take('RedrivePolicy');
  if (redrive !== undefined) {
    const policy = asProps(typeof redrive === 'string' ? JSON.parse(redrive) : redrive);
    const target = policy['deadLetterTargetArn'];
    if (typeof target !== 'string' || !/^arn:aws[\w-]*:sqs:/.test(target))
      fail('its redrive policy names no queue ARN');
    deadLetterQueue = target.split(':').at(-1);
    attributes['RedrivePolicy'] = JSON.stringify({
      deadLetterTargetArn: target,
      maxReceiveCount: Number(policy['maxReceiveCount']),
    });
  }
  if (take('RedriveAllowPolicy') !== undefined)
    fail('RedriveAllowPolicy is not played by the rehearsal');
  return { constructPath, name: queueName, attributes, deadLetterQueue };
}

function planSubscription(
  constructPath: string,
  take: (name: string) => unknown,
  fail: (reason: string) => never,
): SubscriptionPlan {
  const protocol = take('Protocol');
  if (protocol !== 'sqs')
    fail(`protocol ${text(protocol)}: the rehearsal plays subscriptions of SQS queues only`);
  const topicArn = String(take('TopicArn'));
  const endpoint = String(take('Endpoint'));
  const attributes: Record<string, string> = {};
  for (const property of ['RawMessageDelivery', 'FilterPolicy', 'FilterPolicyScope']) {
    const value = take(property);
    if (value !== undefined)
      attributes[property] = typeof value === 'string' ? value : JSON.stringify(value);
  }
  if (take('Region') !== undefined) fail('a cross-region subscription is not played');
  return {
    constructPath,
    topicName: topicArn.split(':').at(-1) ?? '',
    queueName: endpoint.split(':').at(-1) ?? '',
    attributes,
  };
}

export interface DataClients {
  dynamodb: DynamoDBClient;
  sqs: SQSClient;
  sns: SNSClient;
}

/** What was made, by name: the queue URLs and topic ARNs as the emulators give them. */
export interface CreatedData {
  queueUrls: Map<string, string>;
  topicArns: Map<string, string>;
}

/** Creates everything of the plan (on empty emulators); an emulator's refusal names the construct. */
export async function createData(plan: DataPlan, clients: DataClients): Promise<CreatedData> {
  const attempt = async <T>(constructPath: string, action: () => Promise<T>): Promise<T> => {
    try {
      return await action();
    } catch (error) {
      throw new Error(
        `${constructPath}: the emulator refused it as the template defines it: ${error instanceof Error ? error.message : String(error)}`,
        { cause: error },
      );
    }
  };
  await Promise.all(
    plan.tables.map((table) =>
      attempt(table.constructPath, async () => {
        await clients.dynamodb.send(new CreateTableCommand(table.create));
        await waitUntilTableExists(
          { client: clients.dynamodb, maxWaitTime: 60, minDelay: 1, maxDelay: 2 },
          { TableName: table.create.TableName },
        );
        if (table.ttlAttribute !== undefined) {
          await clients.dynamodb.send(
            new UpdateTimeToLiveCommand({
              TableName: table.create.TableName,
              TimeToLiveSpecification: { AttributeName: table.ttlAttribute, Enabled: true },
            }),
          );
        }
      }),
    ),
  );

  // Dead-letter queues first: a redrive policy names an existing queue's ARN (the emulator's).
  const queueUrls = new Map<string, string>();
  const queueArns = new Map<string, string>();
  const ordered = [
    ...plan.queues.filter((queue) => queue.deadLetterQueue === undefined),
    ...plan.queues.filter((queue) => queue.deadLetterQueue !== undefined),
  ];
  for (const queue of ordered) {
    await attempt(queue.constructPath, async () => {
      const attributes = { ...queue.attributes };
      if (queue.deadLetterQueue !== undefined) {
        const policy = JSON.parse(attributes['RedrivePolicy'] ?? '{}') as Record<string, unknown>;
        policy['deadLetterTargetArn'] = queueArns.get(queue.deadLetterQueue);
        attributes['RedrivePolicy'] = JSON.stringify(policy);
      }
      const { QueueUrl } = await clients.sqs.send(
        new CreateQueueCommand({ QueueName: queue.name, Attributes: attributes }),
      );
      if (!QueueUrl) throw new Error('CreateQueue returned no URL');
      const { Attributes } = await clients.sqs.send(
        new GetQueueAttributesCommand({ QueueUrl, AttributeNames: ['QueueArn'] }),
      );
      queueUrls.set(queue.name, QueueUrl);
      queueArns.set(queue.name, Attributes?.QueueArn ?? '');
    });
  }

  const topicArns = new Map<string, string>();
  for (const topic of plan.topics) {
    await attempt(topic.constructPath, async () => {
      const { TopicArn } = await clients.sns.send(new CreateTopicCommand({ Name: topic.name }));
      if (!TopicArn) throw new Error('CreateTopic returned no ARN');
      topicArns.set(topic.name, TopicArn);
    });
  }
  for (const subscription of plan.subscriptions) {
    await attempt(subscription.constructPath, () =>
      clients.sns.send(
        new SubscribeCommand({
          TopicArn: topicArns.get(subscription.topicName),
          Protocol: 'sqs',
          Endpoint: queueArns.get(subscription.queueName),
          Attributes: subscription.attributes,
          ReturnSubscriptionArn: true,
        }),
      ),
    );
  }
  return { queueUrls, topicArns };
}
