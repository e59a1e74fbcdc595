import {
  GetTopicAttributesCommand,
  PublishBatchCommand,
  type SNSClient,
} from '@aws-sdk/client-sns';
import { UnavailableError, type BerthEvent, type EventPublisher } from '@berth/domain';
import { createSnsClient } from './clients.ts';
import { toMessagingError, topicNameOf } from './errors.ts';

/** SNS takes at most ten entries per PublishBatch. */
const PUBLISH_BATCH_SIZE = 10;

export interface SnsEventPublisherOptions {
  sns?: SNSClient;
  topicArn: string;
}

/**
 * Publishes lifecycle events to the topic, each as its JSON body with a `type` message
 * attribute so subscribers can filter by type without parsing bodies.
 */
export class SnsEventPublisher implements EventPublisher {
  readonly #sns: SNSClient;
  readonly #topicArn: string;
  readonly #topicName: string;

  constructor(options: SnsEventPublisherOptions) {
    this.#sns = options.sns ?? createSnsClient();
    this.#topicArn = options.topicArn;
    this.#topicName = topicNameOf(options.topicArn);
  }

  /**
   * Chunks go out one after another; when one fails, the earlier ones stay published. That
   * is safe to retry because event ids are derived from their cause and consumers drop
   * duplicates.
   */
  async publish(events: readonly BerthEvent[]): Promise<void> {
    for (let start = 0; start < events.length; start += PUBLISH_BATCH_SIZE) {
      await this.#publishChunk(events.slice(start, start + PUBLISH_BATCH_SIZE));
    }
  }

  async ping(): Promise<void> {
    try {
      await this.#sns.send(new GetTopicAttributesCommand({ TopicArn: this.#topicArn }));
    } catch (error) {
      throw toMessagingError(error, `reaching topic ${this.#topicName}`);
    }
  }

  async #publishChunk(events: readonly BerthEvent[]): Promise<void> {
    const entries = events.map((event, index) => ({
      Id: String(index),
      Message: JSON.stringify(event),
      MessageAttributes: { type: { DataType: 'String', StringValue: event.type } },
    }));
    let failed;
    try {
      const output = await this.#sns.send(
        new PublishBatchCommand({ TopicArn: this.#topicArn, PublishBatchRequestEntries: entries }),
      );
      failed = output.Failed ?? [];
    } catch (error) {
      throw toMessagingError(
        error,
        `publishing ${events.length} events to topic ${this.#topicName}`,
      );
    }
    if (failed.length > 0) {
      const details = failed.map((entry) => {
        const event = events[Number(entry.Id)];
        return `${event?.eventId ?? `entry ${entry.Id}`} (${entry.Code ?? 'unknown'}${entry.Message ? `: ${entry.Message}` : ''})`;
      });
      throw new UnavailableError(
        `publishing to topic ${this.#topicName}: ${failed.length} of ${events.length} events failed: ${details.join(', ')}`,
      );
    }
  }
}
