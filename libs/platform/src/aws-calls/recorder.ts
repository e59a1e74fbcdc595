import { appendFileSync } from 'node:fs';
import {
  loadAwsCallLogPath,
  loadRehearsalTarget,
  type Env,
  type RehearsalTargetConfig,
} from '@berth/domain';
import type { AwsCallRecord, Shape } from './call.ts';
import { describeAwsCall } from './mapping.ts';
import { deployTarget, type DeployTarget } from './target.ts';

/** Where recorded calls go. */
export interface AwsCallSink {
  record(call: AwsCallRecord): void;
}

/**
 * One JSON line per call, appended synchronously: a process that exits right after a call
 * (`process.exit` in a shutdown) still leaves its line, and lines of processes sharing a file
 * (O_APPEND, one write each) do not interleave.
 */
export class JsonLinesCallLog implements AwsCallSink {
  readonly path: string;

  constructor(path: string) {
    this.path = path;
  }

  record(call: AwsCallRecord): void {
    appendFileSync(this.path, `${JSON.stringify(call)}\n`);
  }
}

/** Counts calls in memory, for benchmarks that report how many AWS calls a path makes. */
export class AwsCallCounter implements AwsCallSink {
  readonly #operations = new Map<string, number>();
  readonly #actions = new Map<string, number>();

  record(call: AwsCallRecord): void {
    this.#operations.set(call.operation, (this.#operations.get(call.operation) ?? 0) + 1);
    for (const check of call.iam) {
      this.#actions.set(check.action, (this.#actions.get(check.action) ?? 0) + 1);
    }
  }

  /** SDK calls per operation (`dynamodb:TransactWriteItems` → 3), sorted by name. */
  byOperation(): Record<string, number> {
    return Object.fromEntries([...this.#operations].sort(([a], [b]) => a.localeCompare(b)));
  }

  /** IAM authorizations per action (a transaction counts once per item). */
  byAction(): Record<string, number> {
    return Object.fromEntries([...this.#actions].sort(([a], [b]) => a.localeCompare(b)));
  }

  /** SDK calls in all. */
  total(): number {
    let sum = 0;
    for (const count of this.#operations.values()) sum += count;
    return sum;
  }

  reset(): void {
    this.#operations.clear();
    this.#actions.clear();
  }
}

/** Any SDK v3 client: only its middleware stack is touched. */
export interface RecordableClient {
  middlewareStack: {
    add(
      middleware: (
        next: (args: { input: object }) => Promise<{ output: unknown }>,
        context: { clientName?: string; commandName?: string },
      ) => (args: { input: object }) => Promise<{ output: unknown }>,
      options: { step: 'initialize'; name: string; override: boolean },
    ): void;
  };
}

export interface RecordAwsCallsOptions {
  /** The berth service whose role makes the calls. */
  service: string;
  sink: AwsCallSink;
  /** Account, region and partition the ARNs are written with. */
  target: DeployTarget;
}

const MIDDLEWARE_NAME = 'berthAwsCallRecorder';

/**
 * Records every call the client sends. In the initialize step: once per call whatever the
 * retries (IAM authorizes each attempt alike), with the caller's input (lib-dynamodb
 * marshals later, which changes no table or index name) and the output (RunTask's task ARN).
 */
export function recordAwsCalls<Client extends RecordableClient>(
  client: Client,
  options: RecordAwsCallsOptions,
): Client {
  const { service, sink, target } = options;
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const describe = (output: unknown, error: string | undefined): void => {
        sink.record(
          describeAwsCall(
            {
              service,
              clientName: context.clientName ?? 'UnknownClient',
              commandName: context.commandName ?? 'UnknownCommand',
              input: args.input as Shape,
              output: output as Shape | undefined,
              error,
            },
            target,
          ),
        );
      };
      let result: { output: unknown };
      try {
        result = await next(args);
      } catch (error) {
        describe(undefined, error instanceof Error ? error.name : 'Error');
        throw error;
      }
      describe(result.output, undefined);
      return result;
    },
    { step: 'initialize', name: MIDDLEWARE_NAME, override: true },
  );
  return client;
}

export interface AwsCallRecording {
  sink: AwsCallSink;
  target: DeployTarget;
}

/**
 * The recording `BERTH_AWS_CALL_LOG` asks for, or `undefined` when it is unset (then no
 * middleware is installed at all). Throws, naming the variable, on an unusable setting.
 */
export function awsCallRecordingFromEnv(env: Env): AwsCallRecording | undefined {
  return awsCallRecording(loadAwsCallLogPath(env), loadRehearsalTarget(env));
}

/** The same from the configuration's `awsCallLogPath` and `rehearsalTarget`. */
export function awsCallRecording(
  path: string | undefined,
  target: RehearsalTargetConfig,
): AwsCallRecording | undefined {
  if (path === undefined) return undefined;
  return {
    sink: new JsonLinesCallLog(path),
    target: deployTarget(target, { requireAccount: true }),
  };
}

/** Installs the recorder on each client when the environment asks for it; a no-op otherwise. */
export function recordAwsCallsFromEnv(
  service: string,
  clients: readonly RecordableClient[],
  env: Env,
): void {
  const recording = awsCallRecordingFromEnv(env);
  if (!recording) return;
  for (const client of clients) recordAwsCalls(client, { service, ...recording });
}
