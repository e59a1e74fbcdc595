export { freePort, localAwsEnvironment, startDynamoDbLocal, startFauxqs } from './engines.ts';
export type { DynamoDbLocalOptions, Engine, FauxqsOptions } from './engines.ts';
export {
  DEFAULT_FAKE_SETTINGS,
  FakeQueues,
  FakeRuntime,
  InMemoryStateStore,
  ManualClock,
  RecordingPublisher,
  makeCoreDeps,
  taskStateChange,
  taskTags,
} from './fakes.ts';
export type {
  FakeCoreDeps,
  FakeCoreDepsOverrides,
  FakeCoreSettings,
  FakeTask,
  QueuesMethod,
  RuntimeMethod,
  StoreMethod,
  TaskChange,
} from './fakes.ts';
