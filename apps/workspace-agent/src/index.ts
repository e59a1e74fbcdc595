/** The agent's exit code after a failed save, shared with the core that reads it. */
export { SAVE_FAILED_EXIT_CODE } from '@berth/domain';
export {
  AGENT_FAILURE_EXIT_CODE,
  MAX_ATTEMPTS,
  START_FAILED_EXIT_CODE,
  WorkspaceAgent,
  saveFailureDetail,
} from './agent.ts';
export type { AgentNotice, AgentOptions, ConsumerTuning } from './agent.ts';
export { parseAgentEnv, saveReserveMs } from './env.ts';
export type { AgentEnv } from './env.ts';
export { GitWorkspace, gitErrorDetail, redactCredentials, threadIdOfRef } from './git-workspace.ts';
export type {
  GitWorkspaceOptions,
  PrepareResult,
  SaveFailure,
  SaveResult,
} from './git-workspace.ts';
export { KeyedSerialQueue } from './keyed-queue.ts';
export { createLogger } from './logger.ts';
export type { LoggerOptions } from './logger.ts';
export {
  INVALID_MESSAGE_EXIT_CODE,
  MAX_OUTPUT_BODY_BYTES,
  invalidAnswer,
  outputBody,
  parseInputMessage,
} from './messages.ts';
export type {
  InputMessage,
  InvalidMessage,
  OutputMessage,
  ThreadOpenMessage,
  WorkMessage,
} from './messages.ts';
export { ChatFileWorkload, MAX_STDOUT_BYTES, ShellWorkload, createWorkload } from './workload.ts';
export type { Workload, WorkloadRequest, WorkloadResult } from './workload.ts';
