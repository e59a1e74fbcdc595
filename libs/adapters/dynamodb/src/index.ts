export { DynamoStateStore } from './state-store.ts';
export type {
  ConsumedCapacityDetail,
  ConsumedCapacityListener,
  DynamoStateStoreOptions,
} from './state-store.ts';
export {
  CONTAINER_INDEXES,
  SESSION_INDEXES,
  TTL_ATTRIBUTE,
  WEBHOOK_INDEXES,
  ensureTables,
  ensureWebhookTable,
  tableDefinitions,
  webhookTableDefinition,
} from './tables.ts';
export { DynamoWebhookStore } from './webhook-store.ts';
export type { DynamoWebhookStoreOptions } from './webhook-store.ts';
export type { EnsureTablesOptions, TableDefinition, TableNames } from './tables.ts';
export { SESSION_RETENTION_SECONDS } from './items.ts';
export { DynamoHistoryStore } from './history-store.ts';
export type { DynamoHistoryStoreOptions } from './history-store.ts';
export { HISTORY_INDEXES, ensureHistoryTable, historyTableDefinition } from './tables.ts';
