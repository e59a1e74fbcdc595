export {
  BerthError,
  CapacityExceededError,
  ConflictError,
  ERROR_STATUS,
  ForbiddenError,
  InvalidArgumentError,
  NotFoundError,
  StaleWriteError,
  UnauthenticatedError,
  UnavailableError,
  isBerthError,
} from './errors.ts';
export type { BerthErrorOptions, ErrorCode } from './errors.ts';
export {
  CONTAINER_ID_PATTERN,
  ID_PART_PATTERN,
  OPAQUE_ID_PATTERN,
  WORKTREES_DIR,
  assertContainerKey,
  assertIdPart,
  assertOpaqueId,
  containerIdOf,
  isIdPart,
  isOpaqueId,
  parseContainerId,
  threadBranch,
  legacyThreadBranch,
  threadRefName,
  worktreePathFor,
} from './identity.ts';
export type { ContainerKey, IdPartField } from './identity.ts';
export { formatDuration, parseDuration } from './duration.ts';
export {
  AWS_VARIABLES,
  ConfigError,
  DEFAULT_AGENT_CONTAINER_NAME,
  DEFAULT_DEV_SERVER_PORT,
  DEFAULT_TABLES,
  POOL_CONTROL_QUEUE_VARIABLE,
  loadAgentConfig,
  loadAgentStartConfig,
  loadAwsCallLogPath,
  loadClientConfig,
  loadConfig,
  loadRehearsalTarget,
} from './config.ts';
export type {
  AgentConfig,
  AgentStartConfig,
  BerthConfig,
  ClientConfig,
  Env,
  RehearsalTargetConfig,
  RuntimeKind,
} from './config.ts';
export {
  CONTAINER_STATUSES,
  FINAL_STATUSES,
  LIVE_STATUSES,
  TRANSITIONS,
  acceptsSessions,
  assertTransition,
  canTransition,
  isLive,
} from './lifecycle.ts';
export type { ContainerStatus } from './lifecycle.ts';
export {
  FALLBACK_REF_ROOT,
  SAVE_FAILED_EXIT_CODE,
  SIGKILL_EXIT_CODE,
  STOP_REASON_KINDS,
  fallbackRefPrefix,
  formatStopReason,
  parseStopReason,
  stopReason,
} from './stop-reason.ts';
export type { StopReason, StopReasonKind } from './stop-reason.ts';
export {
  STOPPED_REASON_LIMIT,
  formatSavedElsewhere,
  parseSavedElsewhere,
} from './saved-elsewhere.ts';
export type { SavedElsewhere } from './saved-elsewhere.ts';
export {
  CheckpointJsonSchema,
  ContainerJsonSchema,
  DEV_SERVER_STATES,
  KEPT_ALIVE_REASONS,
  SESSION_STATUSES,
  SessionJsonSchema,
  containerDueAt,
  devServerJson,
  expiresAt,
  expiryNoticeDueAt,
  idleStopAt,
  keptAliveBy,
  newContainerRecord,
  toCheckpointJson,
  toContainerJson,
  toSessionJson,
} from './model.ts';
export type {
  CheckpointJson,
  CheckpointRecord,
  AssignOutcomeRecord,
  CommandOutcomeRecord,
  StopOutcomeRecord,
  ContainerJson,
  ContainerRecord,
  DevServerRecord,
  DevServerState,
  KeptAliveReason,
  LivenessInput,
  SessionJson,
  SessionRecord,
  SessionStatus,
} from './model.ts';
export { fieldOf, validator } from './validation.ts';
export type { Validator } from './validation.ts';
export {
  COMMAND_TYPES,
  CommandSchema,
  ContainerStopCommand,
  SessionAssignCommand,
  SessionReleaseCommand,
  SessionTouchCommand,
  ThreadReadyCommand,
  CheckpointRecordCommand,
  DevServerStateCommand,
  parseCommand,
} from './commands.ts';
export type {
  Command,
  CommandType,
  ContainerStop,
  ParsedCommand,
  RejectedCommand,
  SessionAssign,
  SessionRelease,
  SessionTouch,
  ThreadReady,
  CheckpointRecordCommandT,
  DevServerStateReport,
} from './commands.ts';
export {
  AGENT_REPORT_SENDER_CHECKS,
  AGENT_REPORT_TYPES,
  checkAgentReport,
  isAgentReportType,
  parseAgentReport,
  senderSessionName,
  taskIdOf,
} from './agent-reports.ts';
export type {
  AgentReport,
  AgentReportSenderCheck,
  AgentReportType,
  ParsedAgentReport,
  ReportCheck,
} from './agent-reports.ts';
export {
  EVENT_TYPES,
  EventSchema,
  containerCause,
  sessionCause,
  containerEvent,
  eventIdFor,
  makeEvent,
} from './events.ts';
export type { BerthEvent, EventInput, EventType } from './events.ts';
export { MANAGED_BY, TASK_TAGS, TaskStateChangeSchema, tagValue } from './task-events.ts';
export type { TaskStateChange } from './task-events.ts';
export { systemClock } from './ports.ts';
export type {
  Clock,
  ContainerExpectation,
  ContainerFilter,
  ContainerGauges,
  ContainerQueueUrls,
  ContainerQueues,
  ContainerWrite,
  EventPublisher,
  HandleOutcome,
  Logger,
  Page,
  QuotaCharge,
  QuotaRepair,
  Runtime,
  SessionExpectation,
  SessionGuardField,
  SessionWrite,
  StateStore,
  StoreChange,
  TaskInfo,
  TaskSpec,
  TaskStatus,
} from './ports.ts';
export { LOCAL_STACK_FILE, LocalStackSchema, parseLocalStack } from './local-stack.ts';
export type { LocalStack } from './local-stack.ts';
export {
  POOL_MEMBER_STATES,
  POOL_SLOT_TAG,
  isPoolKey,
  isSupersededTaskDefinition,
  newPoolMember,
  poolMemberKey,
  poolSlotKey,
} from './pool.ts';
export type {
  ClaimedContainer,
  PoolControlQueues,
  PoolIdentityMessage,
  PoolMemberRecord,
  PoolMemberState,
  PoolMemberWrite,
  PoolRuntime,
  PoolSlotRecord,
  PoolSlotWrite,
  PoolStore,
  PoolTaskSpec,
} from './pool.ts';
export {
  CLIENT_ONLY_FIELDS,
  MAX_MAX_LIFETIME_MS,
  MIN_MAX_LIFETIME_MS,
  POLICY_FIELDS,
  PolicySchema,
  changedContainerPolicy,
  containerPolicyOf,
  idleDueAt,
  lifetimeEndsAt,
  parsePolicy,
  policyKey,
  resolvePolicy,
  toEffectivePolicyJson,
  toPolicyJson,
} from './policy.ts';
export type {
  ContainerPolicy,
  EffectivePolicy,
  EffectiveValue,
  Policy,
  PolicyDefaults,
  PolicyField,
  PolicyJson,
  PolicySource,
  PolicyStore,
  StoredPolicy,
} from './policy.ts';
export {
  DELIVERY_STATUSES,
  STRICT_WEBHOOK_NETWORK_POLICY,
  WEBHOOK_EVENTS_MAX,
  WEBHOOK_RETRY_CAP_MS,
  WEBHOOK_SECRET_MAX,
  WEBHOOK_SECRET_MIN,
  WEBHOOK_URL_MAX,
  WebhookInputSchema,
  assertEventPattern,
  assertWebhookClientId,
  ipLiteralOf,
  matchesEventPatterns,
  parseNetworks,
  parseWebhookInput,
  parseWebhookUrl,
  refusedAddressReason,
  toDeliveryJson,
  toWebhookJson,
  webhookRetryDelayMs,
  webhookStreamOf,
} from './webhooks.ts';
export type {
  DeliveryJson,
  DeliveryStatus,
  WebhookDelivery,
  WebhookInput,
  WebhookJson,
  WebhookNetworkPolicy,
  WebhookStore,
  WebhookSubscription,
} from './webhooks.ts';
