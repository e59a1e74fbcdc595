import type { LifecycleHistory } from '@berth/core';
import {
  BerthError,
  EventSchema,
  validator,
  type BerthEvent,
  type HandleOutcome,
  type Logger,
} from '@berth/domain';

const lifecycleEvent = validator<BerthEvent>(EventSchema);

/**
 * One lifecycle event from `berth-history-events` (the topic's raw delivery) into the history.
 * A body that is not an event is dropped with a log line (retrying cannot fix it); a store
 * failure is retried and dead-lettered after 5 receives. The publisher never waits on this.
 */
export function createHistoryHandler(
  history: LifecycleHistory,
  log: Logger,
  onError: () => void = () => {},
) {
  return async (message: { body: string; messageId: string }): Promise<HandleOutcome> => {
    let event: BerthEvent;
    try {
      event = lifecycleEvent.parse(JSON.parse(message.body));
    } catch (error) {
      log.warn({ messageId: message.messageId, err: error }, 'not a lifecycle event; dropped');
      return 'done';
    }
    try {
      await history.record(event);
      return 'done';
    } catch (error) {
      onError();
      if (error instanceof BerthError && !error.retryable) {
        log.error({ err: error, eventId: event.eventId }, 'event could not be kept in the history');
        return 'done';
      }
      log.error({ err: error, eventId: event.eventId }, 'history write failed; it will be retried');
      return 'retry';
    }
  };
}
