export { Checkpoints, MAX_CHECKPOINT_PAGE } from './checkpoints.ts';
export { ContainerRecords } from './container-records.ts';
export { ContainerService } from './containers.ts';
export { DevServers } from './dev-servers.ts';
export { noMetrics, silentLogger } from './deps.ts';
export type { CoreDeps, CoreMetrics, CoreSettings, PoolDeps, QuotaName } from './deps.ts';
export { PolicyService } from './policies.ts';
export { PoolService } from './pool.ts';
export { PreviewService } from './preview.ts';
export type { PreviewTouch } from './preview.ts';
export type { ClaimResult, PoolTaskRoute, PoolTickReport } from './pool.ts';
export { Reaper } from './reaper.ts';
export type { SweepReport } from './reaper.ts';
export { SessionEndings } from './session-endings.ts';
export { SessionReadiness } from './session-readiness.ts';
export { SessionService } from './sessions.ts';
export type { AssignOutcome } from './sessions.ts';
export { TaskEventHandler } from './task-events.ts';
export type { TaskEventOutcome } from './task-events.ts';
export { UseCases } from './use-cases.ts';
export { WebhookDeliveries, WebhookSubscriptions } from './webhooks.ts';
export type {
  HostResolver,
  SendOutcome,
  WebhookDeliveriesDeps,
  WebhookSender,
  WebhookSubscriptionsDeps,
} from './webhooks.ts';
export { LifecycleHistory, MAX_USAGE_DAYS } from './history.ts';
export type { LifecycleHistoryDeps, UsageAnswer, UsageMetricSink, UsageQuery } from './history.ts';
