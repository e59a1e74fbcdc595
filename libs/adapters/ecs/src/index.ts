export {
  DESCRIBE_BATCH,
  EcsRuntime,
  STARTED_BY,
  STOP_REASON_LIMIT,
  TASK_GROUP,
  clientTokenFor,
  poolClientTokenFor,
} from './ecs-runtime.ts';
export type { EcsRuntimeOptions } from './ecs-runtime.ts';
export { createEcsClient, ecsRetryStrategy, fullJitterBackoff } from './client.ts';
export type { EcsClientOptions, EcsRetryOptions } from './client.ts';
