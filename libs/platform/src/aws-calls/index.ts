export type { AwsCallRecord, IamCheck } from './call.ts';
export { describeAwsCall } from './mapping.ts';
export {
  AwsCallCounter,
  JsonLinesCallLog,
  awsCallRecording,
  awsCallRecordingFromEnv,
  recordAwsCalls,
  recordAwsCallsFromEnv,
} from './recorder.ts';
export type {
  AwsCallRecording,
  AwsCallSink,
  RecordAwsCallsOptions,
  RecordableClient,
} from './recorder.ts';
export {
  AwsCallRecordingConfigError,
  PLACEHOLDER_ACCOUNT,
  deployTarget,
  deployTargetFromEnv,
  partitionOf,
} from './target.ts';
export type { DeployTarget } from './target.ts';
