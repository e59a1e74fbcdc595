export { STACK_NAMES, buildApp } from './app.ts';
export type { BerthApp, BuildOptions } from './app.ts';
export { DEFAULT_INFRA_CONFIG, resolveInfraConfig } from './config.ts';
export type {
  AlarmThresholds,
  InfraConfig,
  InfraConfigOverrides,
  QueueScaling,
  ServiceSizing,
} from './config.ts';
export {
  BerthDataStack,
  CONTAINER_INDEXES,
  MAX_RECEIVE_COUNT,
  SESSION_INDEXES,
} from './data-stack.ts';
export { BerthPlatformStack, WORKSPACE_MOUNT, workspaceEnvironment } from './platform-stack.ts';
export { BerthServiceStack } from './service-stack.ts';
export { BerthDiscoveryStack, DISCOVERY_PORT, DISCOVERY_URL_PARAM } from './discovery-stack.ts';
export {
  BerthPreviewGatewayStack,
  PREVIEW_GATEWAY_PORT,
  PREVIEW_URL_PARAM,
} from './preview-gateway-stack.ts';
export {
  BerthReaperStack,
  BerthSessionStack,
  BerthTaskWatcherStack,
  BerthWebhooksStack,
} from './consumer-stacks.ts';
export { BerthOperationsStack } from './operations-stack.ts';
export { METRICS, ORPHAN_KINDS, REUSE_OUTCOMES } from './metrics.ts';
export { BerthArns, NAMES, PARAMS, SHARED_QUEUES } from './names.ts';
export {
  CONSUMER_ACTIONS,
  WORKSPACE_QUEUE_ACTIONS,
  servicePolicyStatements,
} from './permissions.ts';
export { contextExcludes } from './images.ts';
