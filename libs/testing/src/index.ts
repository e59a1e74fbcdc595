export { freePort, localAwsEnvironment, startDynamoDbLocal, startFauxqs } from './engines.ts';
export type { DynamoDbLocalOptions, Engine, FauxqsOptions } from './engines.ts';
