import {
  parseCommand,
  type CheckpointRecordCommandT,
  type DevServerStateReport,
  type RejectedCommand,
  type ThreadReady,
} from './commands.ts';
import { isLive } from './lifecycle.ts';
import type { ContainerRecord } from './model.ts';

/**
 * What the workspace agent reports to berth, on its own queue (`berth-agent-reports`), never on
 * the lifecycle commands queue: its worktrees (`thread.ready`), checkpoints
 * (`checkpoint.record`) and dev server (`devserver.state`). Nothing else is accepted there.
 */
export const AGENT_REPORT_TYPES = ['thread.ready', 'checkpoint.record', 'devserver.state'] as const;
export type AgentReportType = (typeof AGENT_REPORT_TYPES)[number];
export type AgentReport = ThreadReady | CheckpointRecordCommandT | DevServerStateReport;

export const isAgentReportType = (type: unknown): type is AgentReportType =>
  typeof type === 'string' && (AGENT_REPORT_TYPES as readonly string[]).includes(type);

export type ParsedAgentReport =
  { ok: true; report: AgentReport } | { ok: false; rejection: RejectedCommand };

/** Parses a body from the reports queue: a well-formed report of an agent type, or why not. */
export function parseAgentReport(body: string): ParsedAgentReport {
  const parsed = parseCommand(body);
  if (!parsed.ok) {
    if (parsed.rejection.field === 'type' && !isAgentReportType(parsed.rejection.type)) {
      return {
        ok: false,
        rejection: {
          ...parsed.rejection,
          reason: `type must be one of ${AGENT_REPORT_TYPES.join(', ')} (the agent's reports)`,
        },
      };
    }
    return parsed;
  }
  const { command } = parsed;
  if (!isAgentReportType(command.type)) {
    return {
      ok: false,
      rejection: {
        commandId: command.commandId,
        type: command.type,
        reason: `${command.type} is not an agent report: only ${AGENT_REPORT_TYPES.join(', ')} are accepted on the agent reports queue`,
        field: 'type',
      },
    };
  }
  return { ok: true, report: command as AgentReport };
}

/**
 * `BERTH_AGENT_REPORT_SENDER_CHECK`: `task` accepts a report only from the task of the record
 * it names (SQS's `SenderId`, `<role unique id>:<role session name>`, where ECS makes the role
 * session name the task id); `off` does not look at the sender (the local stack, whose queue
 * emulator gives every message the same SenderId).
 */
export const AGENT_REPORT_SENDER_CHECKS = ['off', 'task'] as const;
export type AgentReportSenderCheck = (typeof AGENT_REPORT_SENDER_CHECKS)[number];

/** The role session name of an assumed-role SenderId (`AROA…:<session>`); undefined otherwise. */
export function senderSessionName(senderId: string | undefined): string | undefined {
  if (senderId === undefined) return undefined;
  const colon = senderId.indexOf(':');
  if (colon <= 0 || colon === senderId.length - 1) return undefined;
  return senderId.slice(colon + 1);
}

/** The task id of an ECS task ARN (`arn:…:task/<cluster>/<id>` or the old `task/<id>`). */
export function taskIdOf(taskArn: string | null | undefined): string | undefined {
  if (!taskArn) return undefined;
  const match = /:task\/(?:[^/]+\/)?([^/:]+)$/.exec(taskArn);
  return match?.[1];
}

export type ReportCheck = { ok: true } | { ok: false; reason: string };

/**
 * Whether a report may be acted on, from the container record its payload names (read from
 * the store), its session, and who sent it. Every report names its containerId and
 * generation; they must be the record's current ones, the session must be that container's
 * (same generation, same thread; a dev server report names no session), and with the `task`
 * check the sender must be that generation's task.
 */
export function checkAgentReport(input: {
  report: AgentReport;
  container: ContainerRecord | undefined;
  session:
    { containerId: string | null; generation: number | null; threadId: string | null } | undefined;
  senderId: string | undefined;
  senderCheck: AgentReportSenderCheck;
}): ReportCheck {
  const { report, container, session } = input;
  const { payload } = report;
  if (!container) return { ok: false, reason: 'unknown_container' };
  if (container.generation !== payload.generation) return { ok: false, reason: 'stale_generation' };
  // A worktree or a dev server is announced only by a container that is alive; a checkpoint
  // pushed during the stop may be read after the record became final, and is still that
  // generation's.
  if (report.type !== 'checkpoint.record' && !isLive(container.status))
    return { ok: false, reason: 'container_not_live' };
  if (
    report.type !== 'devserver.state' &&
    (!session ||
      session.containerId !== container.containerId ||
      session.generation !== container.generation ||
      session.threadId !== report.payload.threadId)
  )
    return { ok: false, reason: 'foreign_session' };
  if (input.senderCheck === 'task') {
    const taskId = taskIdOf(container.taskArn);
    const sender = senderSessionName(input.senderId);
    if (taskId === undefined || sender === undefined || sender !== taskId)
      return { ok: false, reason: 'wrong_sender' };
  }
  return { ok: true };
}
