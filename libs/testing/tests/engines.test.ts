import { DynamoDBClient, ListTablesCommand } from '@aws-sdk/client-dynamodb';
import { ListQueuesCommand, SQSClient } from '@aws-sdk/client-sqs';
import { freePort, startDynamoDbLocal, startFauxqs } from '../src/index.ts';

const credentials = { accessKeyId: 'local', secretAccessKey: 'local' };

describe('local engines', () => {
  it('starts DynamoDB Local and fauxqs on free ports, answers the AWS SDK, and stops them', async () => {
    // Act
    const [dynamodb, fauxqs] = await Promise.all([startDynamoDbLocal(), startFauxqs()]);
    try {
      const tables = await new DynamoDBClient({
        endpoint: dynamodb.endpoint,
        region: 'us-east-1',
        credentials,
      }).send(new ListTablesCommand({}));
      const queues = await new SQSClient({
        endpoint: fauxqs.endpoint,
        region: 'us-east-1',
        credentials,
      }).send(new ListQueuesCommand({}));

      // Assess
      expect(tables.TableNames).toEqual([]);
      expect(queues.QueueUrls ?? []).toEqual([]);
    } finally {
      await Promise.all([dynamodb.stop(), fauxqs.stop()]);
    }
    expect(dynamodb.process.exitCode !== null || dynamodb.process.signalCode !== null).toBe(true);
    expect(fauxqs.process.exitCode !== null || fauxqs.process.signalCode !== null).toBe(true);
  }, 240_000);

  it('hands out a port nothing listens on', async () => {
    const port = await freePort();
    expect(port).toBeGreaterThan(0);
    await expect(fetch(`http://127.0.0.1:${port}`)).rejects.toThrow();
  });
});
