import type { UseCases } from '@berth/core';
import {
  BerthError,
  isAgentReportType,
  makeEvent,
  parseCommand,
  stopReason,
  type Clock,
  type Command,
  type EventPublisher,
  type HandleOutcome,
  type Logger,
} from '@berth/domain';

export interface CommandHandlerDeps {
  useCases: UseCases;
  publisher: EventPublisher;
  clock: Clock;
  log: Logger;
}

/**
 * Turns one queue message into its effect. A bad body is answered once with
 * `command.rejected` and removed (never retried); a failure of the store, the bus or the
 * runtime is left on the queue to be retried, and reaches the DLQ after 5 receives.
 */
export function createCommandHandler(deps: CommandHandlerDeps) {
  const { useCases, publisher, clock, log } = deps;

  const reject = async (
    messageId: string,
    rejection: { reason: string; field?: string; commandId?: string; type?: string },
  ): Promise<void> => {
    await publisher.publish([
      makeEvent({
        type: 'command.rejected',
        cause: `message/${rejection.commandId ?? messageId}`,
        occurredAt: clock.now().toISOString(),
        commandId: rejection.commandId ?? null,
        payload: {
          reason: rejection.reason,
          ...(rejection.field ? { field: rejection.field } : {}),
          ...(rejection.type ? { type: rejection.type } : {}),
          messageId,
        },
      }),
    ]);
  };

  const apply = async (command: Command): Promise<void> => {
    switch (command.type) {
      case 'session.assign': {
        const outcome = await useCases.sessions.assign(command);
        const { commandId } = command;
        const { sessionId } = command.payload;
        if (outcome.kind === 'assigned') {
          const { containerId } = outcome.container;
          const { reused, duplicate } = outcome;
          log.info({ commandId, sessionId, containerId, reused, duplicate }, 'session assigned');
        } else {
          const { reason, message } = outcome;
          log.info({ commandId, sessionId, reason, message }, 'session assign rejected');
        }
        return;
      }
      case 'session.release':
        await useCases.sessions.release(command);
        return;
      case 'session.touch':
        await useCases.sessions.touch(command);
        return;
      case 'thread.ready':
      case 'checkpoint.record':
      case 'devserver.state':
        // Agent reports travel on berth-agent-reports only (createAgentReportHandler); refused
        // before apply.
        return;
      case 'container.stop':
        await useCases.containers.stop(
          command.payload.containerId,
          stopReason('manual', command.payload.reason),
          {
            commandId: command.commandId,
            ...(command.payload.generation !== undefined
              ? { generation: command.payload.generation }
              : {}),
          },
        );
        return;
    }
  };

  return async (message: {
    body: string;
    messageId: string;
    receiveCount: number;
  }): Promise<HandleOutcome> => {
    const parsed = parseCommand(message.body);
    if (!parsed.ok) {
      log.warn({ messageId: message.messageId, ...parsed.rejection }, 'command rejected');
      await reject(message.messageId, parsed.rejection);
      return 'done';
    }
    const { command } = parsed;
    if (isAgentReportType(command.type)) {
      // Whoever can send here is no workspace agent: reports are checked against the store and
      // their sender on their own queue, never taken from the commands queue.
      const reason = `${command.type} is an agent report: workspace agents send it to berth-agent-reports, not to the lifecycle commands queue`;
      log.warn(
        { messageId: message.messageId, commandId: command.commandId, type: command.type },
        reason,
      );
      await reject(message.messageId, {
        reason,
        commandId: command.commandId,
        type: command.type,
        field: 'type',
      });
      return 'done';
    }
    try {
      await apply(command);
      return 'done';
    } catch (error) {
      if (error instanceof BerthError && !error.retryable) {
        // A well-formed command that can never succeed (e.g. stopping a container that does
        // not exist): answered once, not retried.
        log.warn(
          {
            commandId: command.commandId,
            type: command.type,
            code: error.code,
            message: error.message,
          },
          'command refused',
        );
        await reject(message.messageId, {
          reason: `${error.code}: ${error.message}`,
          commandId: command.commandId,
          type: command.type,
          ...(error.field ? { field: error.field } : {}),
        });
        return 'done';
      }
      log.error(
        {
          commandId: command.commandId,
          type: command.type,
          receiveCount: message.receiveCount,
          err: error,
        },
        'command failed; it will be retried',
      );
      return 'retry';
    }
  };
}
