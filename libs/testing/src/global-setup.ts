/**
 * Jest global setup: starts DynamoDB Local and fauxqs on free ports and points the AWS SDK
 * at them through its own environment variables, which the test workers inherit.
 */
import { localAwsEnvironment, startDynamoDbLocal, startFauxqs, type Engine } from './engines.ts';

declare global {
  var __BERTH_ENGINES__: Engine[] | undefined;
}

export default async function globalSetup(): Promise<void> {
  const [dynamodb, fauxqs] = await Promise.all([startDynamoDbLocal(), startFauxqs()]);
  globalThis.__BERTH_ENGINES__ = [dynamodb, fauxqs];
  Object.assign(process.env, localAwsEnvironment(dynamodb.endpoint, fauxqs.endpoint));
}
