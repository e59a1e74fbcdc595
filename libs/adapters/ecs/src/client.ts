import { ECSClient } from '@aws-sdk/client-ecs';
import { ConfiguredRetryStrategy } from '@smithy/core/retry';
import type { DeserializeMiddleware, MetadataBearer } from '@smithy/types';

/**
 * ECS answers bursts with `ThrottlingException: Rate exceeded` (RunTask allows about 20 calls
 * a second per account), and sometimes wraps an EC2 throttle in an InvalidParameterException
 * or ClientException whose message alone says "Rate exceeded".
 */
export const RATE_EXCEEDED = /rate exceeded/i;

export interface EcsRetryOptions {
  /** Attempts in all, the first included. */
  maxAttempts?: number;
  /** The first retry waits up to this long; each later one up to twice the one before. */
  baseDelayMs?: number;
  /** No single wait is longer than this. */
  maxDelayMs?: number;
}

export interface EcsClientOptions extends EcsRetryOptions {
  /** The local runtime's address; absent on AWS (the SDK's own resolution applies). */
  endpoint?: string;
  region?: string;
}

const DEFAULT_MAX_ATTEMPTS = 6;
const DEFAULT_BASE_DELAY_MS = 200;
const DEFAULT_MAX_DELAY_MS = 10_000;

/** Exponential backoff with full jitter: a random wait in [0, min(cap, base * 2^attempt)). */
export function fullJitterBackoff(
  baseDelayMs: number,
  maxDelayMs: number,
): (attempt: number) => number {
  return (attempt) =>
    Math.floor(Math.random() * Math.min(maxDelayMs, baseDelayMs * 2 ** (attempt - 1)));
}

/**
 * The SDK's standard retry strategy (bounded attempts, a shared retry budget so a throttled
 * account is not hammered harder) with our backoff. A hand loop would retry outside the
 * budget and double-retry on top of the SDK's own attempts.
 */
export function ecsRetryStrategy(options: EcsRetryOptions = {}): ConfiguredRetryStrategy {
  return new ConfiguredRetryStrategy(
    options.maxAttempts ?? DEFAULT_MAX_ATTEMPTS,
    fullJitterBackoff(
      options.baseDelayMs ?? DEFAULT_BASE_DELAY_MS,
      options.maxDelayMs ?? DEFAULT_MAX_DELAY_MS,
    ),
  );
}

const WRAPPED_THROTTLE_NAMES = new Set(['ClientException', 'InvalidParameterException']);

/**
 * Marks a wrapped throttle as throttling so the retry middleware (which sits outside this one)
 * backs off and tries again instead of failing on the first "Rate exceeded".
 */
const classifyWrappedThrottle: DeserializeMiddleware<object, MetadataBearer> =
  (next) => async (args) => {
    try {
      return await next(args);
    } catch (error) {
      if (
        error instanceof Error &&
        WRAPPED_THROTTLE_NAMES.has(error.name) &&
        RATE_EXCEEDED.test(error.message)
      ) {
        Object.assign(error, { $retryable: { throttling: true } });
      }
      throw error;
    }
  };

/** Marks wrapped throttles on any ECS client, so an injected one retries them too. */
export function addThrottleClassifier(client: ECSClient): void {
  // High priority in the deserialize step: outside the deserializer, so it sees the parsed
  // error, and inside the retry middleware (finalizeRequest), which then classifies it.
  client.middlewareStack.add(classifyWrappedThrottle, {
    name: 'berthWrappedThrottleClassifier',
    step: 'deserialize',
    priority: 'high',
    override: true,
  });
}

export function createEcsClient(options: EcsClientOptions = {}): ECSClient {
  const maxAttempts = options.maxAttempts ?? DEFAULT_MAX_ATTEMPTS;
  const client = new ECSClient({
    ...(options.endpoint ? { endpoint: options.endpoint } : {}),
    ...(options.region ? { region: options.region } : {}),
    maxAttempts,
    retryStrategy: ecsRetryStrategy({ ...options, maxAttempts }),
  });
  addThrottleClassifier(client);
  return client;
}
