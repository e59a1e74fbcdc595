export { DEFAULT_AGENT_ENTRY, startLocalRuntime } from './local-runtime.ts';
export type { LocalRuntime, LocalRuntimeOptions } from './local-runtime.ts';
export { SHUTDOWN_REASON, Supervisor } from './supervisor.ts';
export type { EventSink, SupervisorOptions } from './supervisor.ts';
export { buildServer } from './server.ts';
export { BareRepositories, DEFAULT_BRANCH } from './repos.ts';
export { taskStateChange } from './events.ts';
export { EcsApiError } from './protocol.ts';
export type { TaskState, LocalTaskStatus } from './task.ts';
