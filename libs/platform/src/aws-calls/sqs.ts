import {
  objectField,
  stringField,
  type IamCheck,
  type OperationMapper,
  type Shape,
} from './call.ts';
import { arnOf, lastSegment, type DeployTarget } from './target.ts';

/**
 * A queue's ARN from its URL or name. The emulator's URLs carry its own host and account
 * (`http://sqs.us-east-1.localhost:4566/000000000000/berth-x`): only the name is kept.
 */
export function queueArn(target: DeployTarget, urlOrName: string): string {
  return arnOf(target, 'sqs', lastSegment(urlOrName));
}

/** The batch operations are authorized as their single forms. */
const SINGLE_FORM: Readonly<Record<string, string>> = {
  SendMessageBatch: 'SendMessage',
  DeleteMessageBatch: 'DeleteMessage',
  ChangeMessageVisibilityBatch: 'ChangeMessageVisibility',
};

const QUEUE_URL_OPERATIONS = new Set([
  'ReceiveMessage',
  'SendMessage',
  'DeleteMessage',
  'ChangeMessageVisibility',
  'GetQueueAttributes',
  'SetQueueAttributes',
  'DeleteQueue',
  'PurgeQueue',
  'TagQueue',
  'UntagQueue',
  'ListQueueTags',
  ...Object.keys(SINGLE_FORM),
]);

function tagContext(tags: Shape | undefined): Record<string, string | string[]> | undefined {
  if (!tags || Object.keys(tags).length === 0) return undefined;
  const context: Record<string, string | string[]> = { 'aws:TagKeys': Object.keys(tags) };
  for (const [key, value] of Object.entries(tags)) context[`aws:RequestTag/${key}`] = String(value);
  return context;
}

function withContext(check: IamCheck, context: IamCheck['context']): IamCheck {
  return context ? { ...check, context } : check;
}

export const mapSqs: OperationMapper = (operation, input, _output, target) => {
  if (QUEUE_URL_OPERATIONS.has(operation)) {
    const resource = queueArn(target, stringField(input, 'QueueUrl') ?? '');
    const action = `sqs:${SINGLE_FORM[operation] ?? operation}`;
    const context = operation === 'TagQueue' ? tagContext(objectField(input, 'Tags')) : undefined;
    return [withContext({ action, resource }, context)];
  }
  switch (operation) {
    case 'GetQueueUrl':
      return [
        {
          action: 'sqs:GetQueueUrl',
          resource: queueArn(target, stringField(input, 'QueueName') ?? ''),
        },
      ];
    case 'CreateQueue': {
      const resource = queueArn(target, stringField(input, 'QueueName') ?? '');
      const context = tagContext(objectField(input, 'tags'));
      // Tags given at creation are authorized as a TagQueue as well.
      return context
        ? [
            { action: 'sqs:CreateQueue', resource, context },
            { action: 'sqs:TagQueue', resource, context },
          ]
        : [{ action: 'sqs:CreateQueue', resource }];
    }
    case 'ListQueues':
      return [{ action: 'sqs:ListQueues', resource: '*' }];
    default:
      return undefined;
  }
};
