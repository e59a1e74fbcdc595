import { SNSClient, type SNSClientConfig } from '@aws-sdk/client-sns';
import { SQSClient, type SQSClientConfig } from '@aws-sdk/client-sqs';

/**
 * Region, credentials and endpoint come from the environment as the SDK reads them
 * (`AWS_REGION`, `AWS_ENDPOINT_URL_SQS`, ...). Queue URLs are not used as endpoints: the
 * local emulator hands out URLs on hosts (`sqs.us-east-1.localhost`) that do not resolve,
 * and on AWS the regional endpoint is the same host anyway.
 */
export function createSqsClient(config: SQSClientConfig = {}): SQSClient {
  return new SQSClient({ ...config, useQueueUrlAsEndpoint: false });
}

export function createSnsClient(config: SNSClientConfig = {}): SNSClient {
  return new SNSClient(config);
}
