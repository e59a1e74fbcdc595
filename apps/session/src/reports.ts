import type { UseCases } from '@berth/core';
import {
  BerthError,
  checkAgentReport,
  makeEvent,
  parseAgentReport,
  type AgentReport,
  type AgentReportSenderCheck,
  type Clock,
  type EventPublisher,
  type HandleOutcome,
  type Logger,
  type StateStore,
} from '@berth/domain';

/** Why a report was not acted on; `malformed` and `not_a_report` are also answered with command.rejected. */
export type ReportRefusal =
  | 'malformed'
  | 'not_a_report'
  | 'unknown_container'
  | 'stale_generation'
  | 'container_not_live'
  | 'foreign_session'
  | 'wrong_sender';

export interface AgentReportHandlerDeps {
  useCases: UseCases;
  store: Pick<StateStore, 'getContainer' | 'getSession'>;
  publisher: EventPublisher;
  clock: Clock;
  log: Logger;
  /** `BERTH_AGENT_REPORT_SENDER_CHECK`. */
  senderCheck: AgentReportSenderCheck;
  /** Counts every report that was not acted on, by reason (a metric). */
  refused?: (reason: ReportRefusal) => void;
}

/**
 * The session service's handler of `berth-agent-reports`: what workspace agents report. Only
 * `thread.ready`, `checkpoint.record` and `devserver.state` are accepted (anything else is answered with
 * `command.rejected` and never executed), and each is acted on only when the store agrees
 * with it: the container record it names is at the generation it names, the session (if it
 * names one) is that generation's, on that thread, and, with the `task` sender check, the message was sent by
 * that generation's task (SQS SenderId). A report that fails is dropped with a log line and
 * a metric; it is not retried.
 */
export function createAgentReportHandler(deps: AgentReportHandlerDeps) {
  const { useCases, store, publisher, clock, log, senderCheck } = deps;
  const refused = deps.refused ?? (() => {});

  const apply = async (report: AgentReport): Promise<void> => {
    if (report.type === 'thread.ready') await useCases.readiness.threadReady(report);
    else if (report.type === 'checkpoint.record') await useCases.checkpoints.record(report);
    else await useCases.devServers.record(report);
  };

  return async (message: {
    body: string;
    messageId: string;
    receiveCount: number;
    senderId?: string;
  }): Promise<HandleOutcome> => {
    const parsed = parseAgentReport(message.body);
    if (!parsed.ok) {
      const reason: ReportRefusal =
        parsed.rejection.field === 'type' ? 'not_a_report' : 'malformed';
      log.warn(
        { messageId: message.messageId, senderId: message.senderId, ...parsed.rejection },
        'agent report rejected',
      );
      refused(reason);
      await publisher.publish([
        makeEvent({
          type: 'command.rejected',
          cause: `message/${parsed.rejection.commandId ?? message.messageId}`,
          occurredAt: clock.now().toISOString(),
          commandId: parsed.rejection.commandId ?? null,
          payload: {
            reason: parsed.rejection.reason,
            ...(parsed.rejection.field ? { field: parsed.rejection.field } : {}),
            ...(parsed.rejection.type ? { type: parsed.rejection.type } : {}),
            messageId: message.messageId,
          },
        }),
      ]);
      return 'done';
    }
    const { report } = parsed;
    const ids = {
      messageId: message.messageId,
      commandId: report.commandId,
      type: report.type,
      containerId: report.payload.containerId,
      generation: report.payload.generation,
      ...('sessionId' in report.payload ? { sessionId: report.payload.sessionId } : {}),
      senderId: message.senderId,
    };
    try {
      const [container, session] = await Promise.all([
        store.getContainer(report.payload.containerId),
        // A dev server report names no session.
        'sessionId' in report.payload ? store.getSession(report.payload.sessionId) : undefined,
      ]);
      const check = checkAgentReport({
        report,
        container,
        session,
        senderId: message.senderId,
        senderCheck,
      });
      if (!check.ok) {
        log.warn(
          { ...ids, reason: check.reason, recordGeneration: container?.generation },
          'agent report refused: it does not match the store; not acted on',
        );
        refused(check.reason as ReportRefusal);
        return 'done';
      }
      await apply(report);
      return 'done';
    } catch (error) {
      if (error instanceof BerthError && !error.retryable) {
        log.warn({ ...ids, code: error.code, message: error.message }, 'agent report refused');
        return 'done';
      }
      log.error(
        { ...ids, receiveCount: message.receiveCount, err: error },
        'agent report failed; it will be retried',
      );
      return 'retry';
    }
  };
}
