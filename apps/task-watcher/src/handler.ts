import type { UseCases } from '@berth/core';
import {
  BerthError,
  validator,
  TaskStateChangeSchema,
  type HandleOutcome,
  type Logger,
  type TaskStateChange,
} from '@berth/domain';

const taskEvent = validator<TaskStateChange>(TaskStateChangeSchema);

/** One `ECS Task State Change` message. Malformed ones are dropped with a log line. */
export function createTaskEventHandler(
  useCases: UseCases,
  log: Logger,
  onError: () => void = () => {},
) {
  return async (message: { body: string; messageId: string }): Promise<HandleOutcome> => {
    let event: TaskStateChange;
    try {
      event = taskEvent.parse(JSON.parse(message.body));
    } catch (error) {
      log.warn(
        { messageId: message.messageId, err: error },
        'not an ECS Task State Change event; dropped',
      );
      return 'done';
    }
    try {
      const outcome = await useCases.taskEvents.handle(event);
      log.info(
        { taskArn: event.detail.taskArn, lastStatus: event.detail.lastStatus, outcome },
        'task event',
      );
      return 'done';
    } catch (error) {
      onError();
      if (error instanceof BerthError && !error.retryable) {
        log.error({ err: error, taskArn: event.detail.taskArn }, 'task event could not be applied');
        return 'done';
      }
      log.error(
        { err: error, taskArn: event.detail.taskArn },
        'task event failed; it will be retried',
      );
      return 'retry';
    }
  };
}
