import { stringField, type OperationMapper } from './call.ts';
import { arnOf, lastSegment, type DeployTarget } from './target.ts';
import { queueArn } from './sqs.ts';

/** A topic's ARN from an ARN of any account or region (the emulator's) or from its name. */
export function topicArn(target: DeployTarget, arnOrName: string): string {
  return arnOf(target, 'sns', lastSegment(arnOrName));
}

/** `arn:...:topic-name:subscription-id`: the subscription's topic. */
function topicOfSubscription(target: DeployTarget, subscriptionArn: string): string {
  const parts = subscriptionArn.split(':');
  return arnOf(target, 'sns', parts.length >= 7 ? (parts[5] ?? '') : lastSegment(subscriptionArn));
}

const TOPIC_ARN_OPERATIONS = new Set([
  'Publish',
  'GetTopicAttributes',
  'SetTopicAttributes',
  'DeleteTopic',
  'ListSubscriptionsByTopic',
  'TagResource',
  'UntagResource',
  'ListTagsForResource',
]);

export const mapSns: OperationMapper = (operation, input, _output, target) => {
  if (TOPIC_ARN_OPERATIONS.has(operation)) {
    const arn = stringField(input, 'TopicArn') ?? stringField(input, 'ResourceArn') ?? '';
    return [{ action: `sns:${operation}`, resource: topicArn(target, arn) }];
  }
  switch (operation) {
    case 'PublishBatch':
      return [
        { action: 'sns:Publish', resource: topicArn(target, stringField(input, 'TopicArn') ?? '') },
      ];
    case 'CreateTopic':
      return [
        { action: 'sns:CreateTopic', resource: topicArn(target, stringField(input, 'Name') ?? '') },
      ];
    case 'Subscribe': {
      const protocol = stringField(input, 'Protocol') ?? '';
      const endpoint = stringField(input, 'Endpoint') ?? '';
      return [
        {
          action: 'sns:Subscribe',
          resource: topicArn(target, stringField(input, 'TopicArn') ?? ''),
          context: {
            'sns:Protocol': protocol,
            // An SQS endpoint is a queue ARN: the deployed one, not the emulator's.
            'sns:Endpoint': protocol === 'sqs' ? queueArn(target, endpoint) : endpoint,
          },
        },
      ];
    }
    case 'Unsubscribe':
      return [
        {
          action: 'sns:Unsubscribe',
          resource: topicOfSubscription(target, stringField(input, 'SubscriptionArn') ?? ''),
        },
      ];
    case 'ListTopics':
      return [{ action: 'sns:ListTopics', resource: '*' }];
    default:
      return undefined;
  }
};
