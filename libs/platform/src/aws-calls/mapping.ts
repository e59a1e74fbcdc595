import type { AwsCallRecord, OperationMapper, Shape } from './call.ts';
import { mapDynamoDb } from './dynamodb.ts';
import { mapEcs } from './ecs.ts';
import { mapSns } from './sns.ts';
import { mapSqs } from './sqs.ts';
import type { DeployTarget } from './target.ts';

/** The SDK's client name → the service's IAM prefix and its mapper. */
const SERVICES: Readonly<Record<string, { prefix: string; map: OperationMapper }>> = {
  DynamoDBClient: { prefix: 'dynamodb', map: mapDynamoDb },
  SQSClient: { prefix: 'sqs', map: mapSqs },
  SNSClient: { prefix: 'sns', map: mapSns },
  ECSClient: { prefix: 'ecs', map: mapEcs },
};

/** `DynamoDBClient` → `dynamodb`; an unknown client's name in lower case without `Client`. */
function prefixOf(clientName: string): string {
  return SERVICES[clientName]?.prefix ?? clientName.replace(/Client$/, '').toLowerCase();
}

/**
 * The record of one SDK call: the operation and every IAM authorization it takes, with the
 * deployed stack's ARNs. An operation no mapper knows is recorded as `unmapped`.
 */
export function describeAwsCall(
  call: {
    service: string;
    clientName: string;
    commandName: string;
    input: Shape;
    output?: Shape | undefined;
    error?: string | undefined;
  },
  target: DeployTarget,
): AwsCallRecord {
  const operationName = call.commandName.replace(/Command$/, '');
  const operation = `${prefixOf(call.clientName)}:${operationName}`;
  const iam = SERVICES[call.clientName]?.map(operationName, call.input, call.output, target);
  return {
    service: call.service,
    operation,
    iam: iam ?? [],
    ...(call.error !== undefined ? { error: call.error } : {}),
    ...(iam === undefined ? { unmapped: true as const } : {}),
  };
}
