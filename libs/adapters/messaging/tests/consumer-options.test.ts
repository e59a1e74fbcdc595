import { InvalidArgumentError, UnavailableError } from '@berth/domain';
import {
  containerQueueNames,
  toMessagingError,
  validateQueueConsumerOptions,
} from '../src/index.ts';
import type { QueueConsumerOptions } from '../src/index.ts';

const base: QueueConsumerOptions = {
  queueUrl: 'http://sqs.us-east-1.localhost:4566/000000000000/berth-lifecycle-commands',
  handle: () => Promise.resolve('done'),
};

function refusal(options: Partial<QueueConsumerOptions>): InvalidArgumentError {
  try {
    validateQueueConsumerOptions({ ...base, ...options });
  } catch (error) {
    if (error instanceof InvalidArgumentError) return error;
    throw error;
  }
  throw new Error('the options were accepted');
}

describe('validateQueueConsumerOptions', () => {
  it('fills in the defaults', () => {
    expect(validateQueueConsumerOptions(base)).toEqual({
      queueUrl: base.queueUrl,
      batchSize: 10,
      concurrency: 10,
      visibilityTimeoutSeconds: 30,
      heartbeatIntervalSeconds: 15,
      waitTimeSeconds: 20,
      stopTimeoutMs: 60_000,
    });
  });

  it('defaults concurrency to the batch size and turns the heartbeat off for a 1 s visibility', () => {
    const resolved = validateQueueConsumerOptions({
      ...base,
      batchSize: 3,
      visibilityTimeoutSeconds: 1,
    });
    expect(resolved.concurrency).toBe(3);
    expect(resolved.heartbeatIntervalSeconds).toBe(0);
  });

  it.each([
    [{ batchSize: 0 }, 'batchSize', 'batchSize must be a whole number from 1 to 10; got 0'],
    [{ batchSize: 11 }, 'batchSize', 'batchSize must be a whole number from 1 to 10; got 11'],
    [{ batchSize: 2.5 }, 'batchSize', 'batchSize must be a whole number from 1 to 10; got 2.5'],
    [{ concurrency: 0 }, 'concurrency', 'concurrency must be a whole number from 1 to 1000; got 0'],
    [
      { visibilityTimeoutSeconds: -1 },
      'visibilityTimeoutSeconds',
      'visibilityTimeoutSeconds must be a whole number from 0 to 43200; got -1',
    ],
    [
      { waitTimeSeconds: 0 },
      'waitTimeSeconds',
      'waitTimeSeconds must be a whole number from 1 to 20; got 0',
    ],
    [
      { stopTimeoutMs: 0 },
      'stopTimeoutMs',
      'stopTimeoutMs must be a whole number from 1 to 86400000; got 0',
    ],
    [
      { visibilityTimeoutSeconds: 10, heartbeatIntervalSeconds: 10 },
      'heartbeatIntervalSeconds',
      'heartbeatIntervalSeconds (10) must be less than visibilityTimeoutSeconds (10), or 0 for no heartbeat',
    ],
    [
      { queueUrl: 'berth-lifecycle-commands' },
      'queueUrl',
      'queueUrl must be a queue URL; got "berth-lifecycle-commands"',
    ],
    [{ handle: undefined }, 'handle', "handle must be a function answering 'done' or 'retry'"],
  ] as [Partial<QueueConsumerOptions>, string, string][])(
    'refuses %j naming %s',
    (options, field, message) => {
      const error = refusal(options);
      expect(error.field).toBe(field);
      expect(error.message).toBe(message);
    },
  );

  it('refuses a value of the wrong type', () => {
    expect(refusal({ batchSize: '5' as unknown as number }).message).toBe(
      'batchSize must be a whole number from 1 to 10; got a string',
    );
  });
});

describe('containerQueueNames', () => {
  it('makes short SQS-safe names from a containerId with dots', () => {
    const containerId = `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}`;
    const names = containerQueueNames(containerId, 123456789);
    for (const name of [names.input, names.output]) {
      expect(name).toMatch(/^berth-[0-9a-f]{20}-g123456789-(in|out)$/);
      expect(name.length).toBeLessThanOrEqual(80);
    }
    expect(names.input.replace(/-in$/, '')).toBe(names.output.replace(/-out$/, ''));
  });

  it('gives different containers and generations different names', () => {
    const names = new Set(
      ['a-b.c.d', 'a.b-c.d', 'a.b.c-d'].flatMap((id) =>
        [1, 2].map((g) => containerQueueNames(id, g).input),
      ),
    );
    expect(names.size).toBe(6);
  });

  it('refuses a malformed containerId or generation', () => {
    expect(() => containerQueueNames('acme-web-john', 1)).toThrow(InvalidArgumentError);
    expect(() => containerQueueNames('acme.web.john', 0)).toThrow(
      'generation must be a whole number of at least 1; got 0',
    );
  });
});

describe('toMessagingError', () => {
  const sdkError = (name: string, extra: Record<string, unknown> = {}): Error =>
    Object.assign(new Error(`${name} happened`), { name, $metadata: {}, ...extra });

  it('names the queue for a missing queue, in either protocol spelling', () => {
    for (const error of [
      sdkError('QueueDoesNotExist'),
      sdkError('Whatever', { Code: 'AWS.SimpleQueueService.NonExistentQueue' }),
    ]) {
      const mapped = toMessagingError(error, 'sending to queue berth-x');
      expect(mapped).toBeInstanceOf(UnavailableError);
      expect(mapped.message).toBe('sending to queue berth-x failed: the queue does not exist');
      expect(mapped.cause).toMatchObject({ name: error.name, message: error.message });
    }
  });

  it('treats throttling and network trouble as unavailable and refused input as invalid', () => {
    expect(toMessagingError(sdkError('ThrottlingException'), 'x')).toBeInstanceOf(UnavailableError);
    expect(
      toMessagingError(
        Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }),
        'x',
      ),
    ).toBeInstanceOf(UnavailableError);
    const refused = toMessagingError(sdkError('InvalidMessageContents'), 'sending to queue q');
    expect(refused).toBeInstanceOf(InvalidArgumentError);
    expect(refused.message).toBe(
      'sending to queue q was refused: InvalidMessageContents: InvalidMessageContents happened',
    );
  });

  it('keeps the raw HTTP exchange (signed headers and all) out of the cause', () => {
    const error = sdkError('ThrottlingException', {
      $fault: 'client',
      $metadata: { httpStatusCode: 400, requestId: 'r-1', attempts: 3 },
      $response: {
        headers: { authorization: 'AWS4-HMAC-SHA256 Credential=AKIA/..., Signature=abc' },
      },
    });
    const mapped = toMessagingError(error, 'x');
    expect(mapped.cause).toMatchObject({
      name: 'ThrottlingException',
      $fault: 'client',
      $metadata: { httpStatusCode: 400, requestId: 'r-1', attempts: 3 },
    });
    expect(JSON.stringify(mapped.cause)).not.toContain('Signature');
    expect(mapped.cause).not.toHaveProperty('$response');
  });

  it('passes domain errors through', () => {
    const error = new UnavailableError('already mapped');
    expect(toMessagingError(error, 'x')).toBe(error);
  });
});
