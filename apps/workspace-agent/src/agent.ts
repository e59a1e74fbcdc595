import { createHash } from 'node:crypto';
import { SendMessageCommand, type Message, type SQSClient } from '@aws-sdk/client-sqs';
import type { Logger } from 'pino';
import { Consumer } from 'sqs-consumer';
import {
  SAVE_FAILED_EXIT_CODE,
  UnavailableError,
  formatSavedElsewhere,
  formatStopReason,
} from '@berth/domain';
import { isMissingQueue } from '@berth/messaging';
import { saveReserveMs, type AgentEnv } from './env.ts';
import {
  gitErrorDetail,
  redactCredentials,
  type GitWorkspace,
  type SaveResult,
} from './git-workspace.ts';
import { CheckpointPusher, type Checkpoint } from './checkpoint-pusher.ts';
import { DevServer, type DevServerReport, type DevServerTuning } from './dev-server.ts';
import { KeyedSerialQueue } from './keyed-queue.ts';
import {
  invalidAnswer,
  outputBody,
  parseInputMessage,
  type OutputMessage,
  type ThreadCloseMessage,
  type ThreadOpenMessage,
  type ThreadRevertMessage,
  type WorkMessage,
} from './messages.ts';
import type { Workload } from './workload.ts';

/** What the agent tells the process that started it (over the IPC channel, when there is one). */
export type AgentNotice =
  | { type: 'ready' }
  | { type: 'stopping'; reason: string }
  /**
   * A process group the agent started (a workload's, the dev server's): the local runtime
   * ends it with the agent, however it ends.
   */
  | { type: 'workload'; pgid: number };

/** The agent could not prepare its workspace (clone failed, unusable WORKSPACE_PATH). */
export const START_FAILED_EXIT_CODE = 1;
/** A message whose handling failed (not the workload: the agent itself) is tried this often. */
export const MAX_ATTEMPTS = 3;
/** The answer's exit code when the agent, not the workload, could not handle a message. */
export const AGENT_FAILURE_EXIT_CODE = 70;

export interface ConsumerTuning {
  /** Messages taken per receive; they run concurrently, one at a time per thread. */
  batchSize: number;
  waitTimeSeconds: number;
  visibilityTimeoutSeconds: number;
  heartbeatIntervalSeconds: number;
}

const DEFAULT_TUNING: ConsumerTuning = {
  batchSize: 10,
  waitTimeSeconds: 20,
  visibilityTimeoutSeconds: 60,
  heartbeatIntervalSeconds: 20,
};

const MAX_POLL_BACKOFF_MS = 10_000;

export interface AgentOptions {
  env: AgentEnv;
  logger: Logger;
  sqs: SQSClient;
  workspace: GitWorkspace;
  workload: Workload;
  notify: (notice: AgentNotice) => Promise<void>;
  /**
   * SQS says the input queue does not exist (deleted behind berth's back): the container can
   * never be reached again, so the caller saves and ends it, and its task's end fails the record.
   */
  onInputQueueGone?: () => void;
  tuning?: Partial<ConsumerTuning>;
  /** The dev server's backoff and probing (BERTH_DEV_SERVER_COMMAND); defaults outside tests. */
  devServerTuning?: Partial<DevServerTuning>;
}

/**
 * A dev server report that could not be sent is tried again, pausing up to this long between
 * tries, until it is sent, a newer one supersedes it or the agent stops: the record must not
 * keep an old state because the queue was unreachable for a while.
 */
const DEV_SERVER_REPORT_MAX_PAUSE_MS = 30_000;

class ShuttingDownError extends Error {
  constructor() {
    super('the agent is stopping and takes no new messages');
    this.name = 'ShuttingDownError';
  }
}

/** The short detail of a failed save, for the stop reason `save_failed:<detail>`. */
export function saveFailureDetail(result: SaveResult): string {
  const first = result.failures[0];
  if (!first) return 'unknown';
  const more = result.failures.length > 1 ? ` (+${result.failures.length - 1} more)` : '';
  return `${first.step}: ${first.detail}${more}`;
}

/**
 * The process inside each container: prepares the workspace, runs the workload once per input
 * message, answers on the output queue, and saves the workspace to git when told to stop.
 */
export class WorkspaceAgent {
  readonly #env: AgentEnv;
  readonly #logger: Logger;
  readonly #sqs: SQSClient;
  readonly #workspace: GitWorkspace;
  readonly #workload: Workload;
  readonly #notify: (notice: AgentNotice) => Promise<void>;
  readonly #onInputQueueGone: () => void;
  readonly #tuning: ConsumerTuning;
  readonly #threads = new KeyedSerialQueue();
  /** The sessions of this container that have each thread open (from thread.open / thread.close). */
  readonly #openSessions = new Map<string, Set<string>>();
  /** Messages received and not yet settled: `handling` in the handler, `acking` being deleted. */
  readonly #inFlight = new Map<string, 'handling' | 'acking'>();
  #idleWaiters: (() => void)[] = [];
  #consumer: Consumer | undefined;
  #starting: Promise<void> | undefined;
  #stopping = false;
  #shutdown: Promise<number> | undefined;
  #pollBackoffMs = 0;
  readonly #checkpoints: CheckpointPusher;
  readonly #devServerTuning: Partial<DevServerTuning> | undefined;
  #devServer: DevServer | undefined;
  /** Dev server reports go out one after another, in the order of their sequence. */
  #devServerReports: Promise<void> = Promise.resolve();
  #latestDevServerSequence = 0;

  constructor(options: AgentOptions) {
    this.#env = options.env;
    this.#logger = options.logger;
    this.#sqs = options.sqs;
    this.#workspace = options.workspace;
    this.#workload = options.workload;
    this.#notify = options.notify;
    this.#onInputQueueGone = options.onInputQueueGone ?? (() => {});
    this.#tuning = { ...DEFAULT_TUNING, ...options.tuning };
    this.#devServerTuning = options.devServerTuning;
    this.#checkpoints = new CheckpointPusher({
      intervalMs: this.#env.checkpointPushIntervalMs,
      push: (branches) => this.#workspace.pushBranches(branches),
      announce: (checkpoint) => this.#announceCheckpoint(checkpoint),
      logger: this.#logger,
    });
  }

  get stopping(): boolean {
    return this.#stopping;
  }

  /** Prepares the workspace, starts taking messages and signals readiness. Throws when it cannot start. */
  start(): Promise<void> {
    this.#starting ??= this.#start();
    return this.#starting;
  }

  async #start(): Promise<void> {
    const startedAt = Date.now();
    const prepared = await this.#workspace.prepare();
    this.#logger.info(
      {
        mode: prepared.mode,
        threads: prepared.threads,
        restoreFailures: prepared.restoreFailures,
        recovered: prepared.recovery ? prepared.recovery.ok : undefined,
        durationMs: Date.now() - startedAt,
      },
      'workspace prepared',
    );
    if (this.#stopping) return;
    this.#consumer = this.#createConsumer();
    this.#consumer.start();
    await this.#startDevServer();
    this.#logger.info({ workspacePath: this.#workspace.path }, 'ready');
    await this.#notify({ type: 'ready' });
  }

  /**
   * BERTH_DEV_SERVER_COMMAND, once the workspace is ready: in the main checkout, or in the
   * worktree of BERTH_DEV_SERVER_THREAD (made now). It runs in the background; a failure to
   * make its worktree is logged and leaves the container without one, not unusable.
   */
  async #startDevServer(): Promise<void> {
    const command = this.#env.devServerCommand;
    if (command === undefined) return;
    const thread = this.#env.devServerThread;
    let cwd = this.#workspace.path;
    if (thread !== undefined) {
      try {
        cwd = await this.#threads.run(thread, () => this.#workspace.ensureWorktree(thread));
      } catch (error) {
        this.#logger.error(
          { threadId: thread, detail: gitErrorDetail(error) },
          "could not make the dev server's worktree; no dev server",
        );
        return;
      }
    }
    if (this.#stopping) return;
    this.#devServer = new DevServer({
      command,
      port: this.#env.devServerPort,
      readyPath: this.#env.devServerReadyPath,
      cwd,
      env: { CONTAINER_ID: this.#env.containerId, WORKSPACE_PATH: this.#workspace.path },
      logger: this.#logger,
      report: (report) => this.#reportDevServer(report),
      onProcessGroup: (pgid) => void this.#notify({ type: 'workload', pgid }),
      ...(this.#devServerTuning ? { tuning: this.#devServerTuning } : {}),
    });
    this.#logger.info(
      { cwd, port: this.#env.devServerPort, threadId: thread },
      'starting the dev server',
    );
    this.#devServer.start();
  }

  /**
   * Sends a dev server state to berth (`devserver.state`), after the ones before it. A send
   * that fails is tried again with a growing pause until it goes out, unless a newer state
   * comes meanwhile (berth keeps the highest sequence, so the older one no longer matters).
   */
  #reportDevServer(report: DevServerReport): void {
    this.#latestDevServerSequence = report.sequence;
    const send = async (): Promise<void> => {
      for (let attempt = 1; ; attempt += 1) {
        // A newer state went out meanwhile, or the container is going away: this one no longer matters.
        if (attempt > 1 && (report.sequence < this.#latestDevServerSequence || this.#stopping))
          return;
        try {
          await this.#announce('devserver.state', `devserver:${report.sequence}`, {
            containerId: this.#env.containerId,
            generation: this.#env.generation,
            ...report,
          });
          return;
        } catch (error) {
          if (attempt === 1 || attempt % 10 === 0) {
            this.#logger.error(
              { err: error, state: report.state, sequence: report.sequence, attempt },
              'could not report the dev server state; trying again',
            );
          }
          await new Promise((resolve) =>
            setTimeout(resolve, Math.min(500 * 2 ** attempt, DEV_SERVER_REPORT_MAX_PAUSE_MS)),
          );
        }
      }
    };
    this.#devServerReports = this.#devServerReports.then(send);
  }

  #createConsumer(): Consumer {
    const consumer = Consumer.create({
      queueUrl: this.#env.inputQueueUrl,
      sqs: this.#sqs,
      batchSize: this.#tuning.batchSize,
      waitTimeSeconds: this.#tuning.waitTimeSeconds,
      visibilityTimeout: this.#tuning.visibilityTimeoutSeconds,
      heartbeatInterval: this.#tuning.heartbeatIntervalSeconds,
      // A message the agent failed on comes back after a pause rather than at once.
      terminateVisibilityTimeout: 5,
      messageSystemAttributeNames: ['ApproximateReceiveCount'],
      strictReturn: true,
      handleMessage: (message) => this.#handle(message),
    });
    consumer.on('message_processed', (message) => this.#settle(message));
    consumer.on('processing_error', (error, message) => {
      if (!(error.cause instanceof ShuttingDownError)) {
        this.#logger.error(
          { messageId: message.MessageId, err: error },
          'message handling failed; it will be retried',
        );
      }
      this.#settle(message);
    });
    consumer.on('error', (error, message) => {
      if (message === undefined && isMissingQueue(error)) {
        this.#logger.error(
          { err: error },
          'the input queue is gone; this container is unreachable',
        );
        this.#onInputQueueGone();
        return;
      }
      if (message === undefined) {
        // A failed receive (queue unreachable or gone): back off instead of polling in a tight loop.
        this.#pollBackoffMs = Math.min(Math.max(this.#pollBackoffMs * 2, 250), MAX_POLL_BACKOFF_MS);
        consumer.updateOption('pollingWaitTimeMs', this.#pollBackoffMs);
        this.#logger.error(
          { err: error, retryInMs: this.#pollBackoffMs },
          'receiving from the input queue failed',
        );
        return;
      }
      const messages = Array.isArray(message) ? message : [message];
      this.#logger.error(
        { err: error, messageIds: messages.map((m) => m.MessageId) },
        'input queue operation failed',
      );
      // Only a failed delete ends a message's life here; a failed heartbeat does not.
      for (const m of messages)
        if (m.MessageId && this.#inFlight.get(m.MessageId) === 'acking') this.#settle(m);
    });
    const recovered = (): void => {
      if (this.#pollBackoffMs === 0) return;
      this.#pollBackoffMs = 0;
      consumer.updateOption('pollingWaitTimeMs', 0);
    };
    consumer.on('empty', recovered);
    consumer.on('response_processed', recovered);
    return consumer;
  }

  #settle(message: Message): void {
    if (message.MessageId) this.#inFlight.delete(message.MessageId);
    if (this.#inFlight.size === 0) {
      const waiters = this.#idleWaiters;
      this.#idleWaiters = [];
      for (const wake of waiters) wake();
    }
  }

  /** Resolves true once no message is in flight, false when `timeoutMs` passes first. */
  #whenIdle(timeoutMs: number): Promise<boolean> {
    if (this.#inFlight.size === 0) return Promise.resolve(true);
    if (timeoutMs <= 0) return Promise.resolve(false);
    return new Promise((resolve) => {
      const wake = (): void => {
        clearTimeout(timer);
        resolve(true);
      };
      const timer = setTimeout(() => {
        this.#idleWaiters = this.#idleWaiters.filter((w) => w !== wake);
        resolve(false);
      }, timeoutMs);
      this.#idleWaiters.push(wake);
    });
  }

  async #handle(message: Message): Promise<Message> {
    if (this.#stopping) throw new ShuttingDownError();
    const id = message.MessageId ?? '';
    this.#inFlight.set(id, 'handling');
    try {
      await this.#dispatch(message);
      this.#inFlight.set(id, 'acking');
      return message;
    } catch (error) {
      this.#inFlight.delete(id);
      throw error;
    }
  }

  async #dispatch(message: Message): Promise<void> {
    const input = parseInputMessage(message.Body);
    const log = this.#logger.child({ messageId: message.MessageId });
    switch (input.kind) {
      case 'invalid':
        log.warn(
          { field: input.field, error: input.error },
          'invalid message answered with exit code 2',
        );
        await this.#send(invalidAnswer(input));
        return;
      case 'thread.open':
        await this.#threads.run(input.threadId, () => {
          this.#refuseWhenStopping();
          return this.#openThread(input, message, log);
        });
        return;
      case 'thread.close':
        await this.#threads.run(input.threadId, () => {
          this.#refuseWhenStopping();
          return this.#closeThread(input, message, log);
        });
        return;
      case 'thread.revert':
        await this.#threads.run(input.threadId, () => {
          this.#refuseWhenStopping();
          return this.#revert(input, message, log);
        });
        return;
      case 'work':
        await this.#threads.run(input.threadId, () => {
          this.#refuseWhenStopping();
          return this.#work(input, message, log);
        });
        return;
    }
  }

  /**
   * A message whose turn comes after the stop began (it waited behind a busy thread) is not
   * started and not acknowledged: it goes back to the queue exactly like one the stop kept
   * from being received. Acknowledging it would report as done what never ran; running it
   * would start work the save may not wait for.
   */
  #refuseWhenStopping(): void {
    if (this.#stopping) throw new ShuttingDownError();
  }

  #attempt(message: Message): number {
    const count = Number(message.Attributes?.ApproximateReceiveCount ?? '1');
    return Number.isFinite(count) ? count : 1;
  }

  async #openThread(input: ThreadOpenMessage, message: Message, log: Logger): Promise<void> {
    try {
      const worktreePath = await this.#workspace.ensureWorktree(input.threadId);
      if (input.sessionId !== undefined) {
        const open = this.#openSessions.get(input.threadId) ?? new Set<string>();
        open.add(input.sessionId);
        this.#openSessions.set(input.threadId, open);
      }
      log.info(
        { threadId: input.threadId, sessionId: input.sessionId, worktreePath },
        'thread opened',
      );
      if (input.sessionId !== undefined) {
        const head = await this.#workspace.head(input.threadId);
        await this.#announce('thread.ready', `ready:${input.sessionId}`, {
          sessionId: input.sessionId,
          threadId: input.threadId,
          containerId: this.#env.containerId,
          generation: this.#env.generation,
          worktreePath,
          head,
        });
      }
    } catch (error) {
      if (this.#attempt(message) < MAX_ATTEMPTS) throw error;
      log.error(
        { threadId: input.threadId, err: error },
        'could not open the thread; giving up on this message',
      );
    }
  }

  /**
   * A session left the thread. Once no session of this container has it open, its work is
   * saved and its worktree removed from disk; a failed save keeps it for the stop's save.
   */
  async #closeThread(input: ThreadCloseMessage, message: Message, log: Logger): Promise<void> {
    const open = this.#openSessions.get(input.threadId);
    if (input.sessionId !== undefined) open?.delete(input.sessionId);
    if (open !== undefined && open.size > 0) {
      log.info(
        { threadId: input.threadId, sessionId: input.sessionId, stillOpenBy: open.size },
        'session left the thread; other sessions keep it open',
      );
      return;
    }
    this.#openSessions.delete(input.threadId);
    if (input.threadId === this.#env.devServerThread && this.#devServer !== undefined) {
      // The dev server serves this worktree: it stays until the stop, whose save has it.
      log.info({ threadId: input.threadId }, "the dev server's thread stays open");
      return;
    }
    try {
      const { removed, save } = await this.#workspace.closeThread(input.threadId);
      if (!removed && !save.ok) {
        log.warn(
          { threadId: input.threadId, failures: save.failures },
          'could not save the closed thread; its worktree is kept for the stop',
        );
      }
    } catch (error) {
      if (this.#attempt(message) < MAX_ATTEMPTS) throw error;
      log.error(
        { threadId: input.threadId, err: error },
        'could not close the thread; its worktree is kept for the stop',
      );
    }
  }

  /**
   * Tells berth (the session service, through the agent reports queue) what happened in the
   * workspace. The commandId is derived from what is announced, so a repeat changes
   * nothing. Skipped, with a log line, when the runtime gave no queue or generation.
   */
  async #announce(type: string, key: string, payload: Record<string, unknown>): Promise<void> {
    const queueUrl = this.#env.agentReportsUrl;
    if (queueUrl === undefined || this.#env.generation === undefined) {
      this.#logger.debug({ type }, 'no agent reports queue or generation; not announced');
      return;
    }
    const digest = createHash('sha256')
      .update(`${this.#env.containerId}#${this.#env.generation}/${key}`)
      .digest('hex')
      .slice(0, 40);
    try {
      await this.#sqs.send(
        new SendMessageCommand({
          QueueUrl: queueUrl,
          MessageBody: JSON.stringify({
            type,
            commandId: `agent-${type}-${digest}`,
            payload,
          }),
        }),
      );
    } catch (error) {
      const name = error instanceof Error ? error.name : 'Error';
      throw new UnavailableError(`could not announce ${type} to berth (${name})`, {
        cause: error,
      });
    }
  }

  async #work(input: WorkMessage, message: Message, log: Logger): Promise<void> {
    const ids = { sessionId: input.sessionId, threadId: input.threadId };
    const startedAt = Date.now();
    let output: OutputMessage;
    try {
      const cwd = await this.#workspace.ensureWorktree(input.threadId);
      this.#refuseWhenStopping();
      const before = await this.#workspace.head(input.threadId);
      const result = await this.#workload.run({
        cwd,
        text: input.text,
        env: {
          CONTAINER_ID: this.#env.containerId,
          WORKSPACE_PATH: this.#workspace.path,
          BERTH_SESSION_ID: input.sessionId,
          BERTH_THREAD_ID: input.threadId,
        },
      });
      const checkpoint = await this.#checkpoint(input, message.MessageId ?? '', before, log);
      output = {
        ...ids,
        text: result.truncated ? `${result.stdout}\n[berth: output truncated]` : result.stdout,
        exitCode: result.exitCode,
        checkpoint,
      };
      log.info(
        {
          ...ids,
          exitCode: result.exitCode,
          signal: result.signal,
          durationMs: Date.now() - startedAt,
        },
        'workload finished',
      );
    } catch (error) {
      if (error instanceof ShuttingDownError || this.#attempt(message) < MAX_ATTEMPTS) throw error;
      log.error({ ...ids, err: error }, 'could not run the workload; answering with the failure');
      const detail = redactCredentials(error instanceof Error ? error.message : String(error));
      output = {
        ...ids,
        text: `berth: could not run the workload: ${detail}`,
        exitCode: AGENT_FAILURE_EXIT_CODE,
        checkpoint: null,
      };
    }
    await this.#send(output);
  }

  /**
   * The run's checkpoint: what it changed, committed on the thread's branch and queued for the
   * push; null when it changed nothing. A failure here does not fail the message (the stop's
   * save still has the work): it is logged and the answer says null.
   */
  async #checkpoint(
    input: WorkMessage,
    messageId: string,
    before: string,
    log: Logger,
  ): Promise<string | null> {
    const endedAt = Date.now();
    try {
      const made = await this.#workspace.checkpoint(
        input.threadId,
        before,
        `berth: checkpoint of message ${messageId} (session ${input.sessionId})`,
      );
      if (made === undefined) return null;
      this.#checkpoints.add({
        sessionId: input.sessionId,
        threadId: input.threadId,
        branch: this.#workspace.branchOf(input.threadId),
        commit: made.commit,
        messageId,
        files: made.files,
        filesTotal: made.filesTotal,
        createdAt: new Date(endedAt).toISOString(),
        endedAt,
      });
      return made.commit;
    } catch (error) {
      log.error(
        { threadId: input.threadId, detail: gitErrorDetail(error) },
        'could not make the checkpoint; the stop will save the work',
      );
      return null;
    }
  }

  /** `thread.revert`: a new commit with the checkpoint's tree, announced with `revertOf`. */
  async #revert(input: ThreadRevertMessage, message: Message, log: Logger): Promise<void> {
    try {
      await this.#workspace.ensureWorktree(input.threadId);
      const made = await this.#workspace.revertTo(
        input.threadId,
        input.checkpoint,
        `berth: revert to ${input.checkpoint} (request ${input.requestId}, session ${input.sessionId})`,
      );
      const endedAt = Date.now();
      this.#checkpoints.add({
        sessionId: input.sessionId,
        threadId: input.threadId,
        branch: this.#workspace.branchOf(input.threadId),
        commit: made.commit,
        messageId: input.requestId,
        files: made.files,
        filesTotal: made.filesTotal,
        revertOf: input.checkpoint,
        createdAt: new Date(endedAt).toISOString(),
        endedAt,
      });
      log.info(
        { threadId: input.threadId, revertOf: input.checkpoint, commit: made.commit },
        'thread reverted to a checkpoint',
      );
    } catch (error) {
      if (this.#attempt(message) < MAX_ATTEMPTS) throw error;
      log.error(
        { threadId: input.threadId, checkpoint: input.checkpoint, detail: gitErrorDetail(error) },
        'could not revert the thread; giving up on this request',
      );
    }
  }

  async #announceCheckpoint(checkpoint: Checkpoint): Promise<void> {
    await this.#announce('checkpoint.record', `checkpoint:${checkpoint.commit}`, {
      sessionId: checkpoint.sessionId,
      threadId: checkpoint.threadId,
      containerId: this.#env.containerId,
      generation: this.#env.generation,
      commit: checkpoint.commit,
      messageId: checkpoint.messageId,
      files: checkpoint.files,
      filesTotal: checkpoint.filesTotal,
      ...(checkpoint.revertOf ? { revertOf: checkpoint.revertOf } : {}),
      createdAt: checkpoint.createdAt,
    });
    this.#logger.info(
      {
        threadId: checkpoint.threadId,
        commit: checkpoint.commit,
        messageId: checkpoint.messageId,
        pushLatencyMs: Date.now() - checkpoint.endedAt,
      },
      'checkpoint pushed',
    );
  }

  async #send(output: OutputMessage): Promise<void> {
    try {
      await this.#sqs.send(
        new SendMessageCommand({
          QueueUrl: this.#env.outputQueueUrl,
          MessageBody: outputBody(output),
        }),
      );
    } catch (error) {
      const name = error instanceof Error ? error.name : 'Error';
      throw new UnavailableError(`could not send to the output queue (${name})`, { cause: error });
    }
  }

  /**
   * Stops taking messages, lets the ones in flight finish within the grace period (less what
   * the save needs; overrunning workloads are interrupted), ends every workload process, then
   * saves the workspace. Resolves with the exit code: 0, or 75 when the save failed.
   */
  shutdown(signal: string): Promise<number> {
    this.#shutdown ??= this.#runShutdown(signal);
    return this.#shutdown;
  }

  async #runShutdown(signal: string): Promise<number> {
    const startedAt = Date.now();
    const graceMs = this.#env.shutdownGraceMs;
    const reserveMs = saveReserveMs(graceMs);
    const workDeadline = startedAt + graceMs - reserveMs;
    this.#stopping = true;
    this.#consumer?.stop();
    this.#logger.info(
      { signal, graceMs, reserveMs, inFlight: this.#inFlight.size },
      'stopping: taking no new messages, then saving the workspace',
    );

    if (this.#starting) {
      const outcome = await Promise.race([
        this.#starting.then(
          () => 'started' as const,
          (error: unknown) => error,
        ),
        new Promise<'pending'>((resolve) =>
          setTimeout(() => resolve('pending'), Math.max(workDeadline - Date.now(), 0)),
        ),
      ]);
      if (outcome === 'pending') {
        this.#logger.warn('the start did not complete; saving what is there');
      } else if (outcome !== 'started') {
        // Nothing ran, so there is nothing of this generation to save; the start's failure is the story.
        const reason = `start_failed:${gitErrorDetail(outcome)}`;
        this.#logger.error({ reason }, 'stopping after a failed start');
        await this.#notify({ type: 'stopping', reason });
        return START_FAILED_EXIT_CODE;
      }
    }

    if (!(await this.#whenIdle(workDeadline - Date.now()))) {
      this.#logger.warn(
        { inFlight: this.#inFlight.size, running: this.#workload.running },
        'messages in flight overran the shutdown grace; interrupting their workloads',
      );
      await this.#workload.interrupt(Math.min(1000, Math.floor(reserveMs / 4)));
      if (!(await this.#whenIdle(Math.max(Math.floor(reserveMs / 4), 250)))) {
        this.#logger.warn(
          { inFlight: this.#inFlight.size },
          'saving with messages still unanswered',
        );
      }
    }

    // Every workload process, jobs left running by finished ones included, and the dev
    // server end before the save: what they wrote after it would be lost.
    await Promise.all([this.#workload.stopAll(), this.#devServer?.stop()]);
    // A workload killed in its own git command leaves its lock; no git runs here now but ours.
    await this.#workspace.clearStaleLocks().catch((error: unknown) => {
      this.#logger.error({ detail: gitErrorDetail(error) }, 'could not clear stale git locks');
    });
    // Checkpoints made but not yet pushed go first (and are announced): the save then has only
    // what came after them.
    const flushStartedAt = Date.now();
    await this.#checkpoints.flush();
    this.#checkpoints.close();
    const checkpointFlushMs = Date.now() - flushStartedAt;
    // Keep a little of the grace to report and exit before the runtime kills the process.
    const saveBudgetMs = Math.max(startedAt + graceMs - 300 - Date.now(), 1000);
    const saveStartedAt = Date.now();
    const result = await this.#workspace.save(AbortSignal.timeout(saveBudgetMs));
    if (result.ok) {
      this.#logger.info(
        {
          committed: result.committed,
          pushed: result.pushed,
          merged: result.merged,
          fallbacks: result.fallbacks,
          durationMs: Date.now() - startedAt,
          saveMs: Date.now() - saveStartedAt,
          checkpointFlushMs,
        },
        'workspace saved; exiting',
      );
      if (result.fallbacks.length > 0) {
        await this.#notify({
          type: 'stopping',
          reason: formatSavedElsewhere(
            this.#workspace.fallbackRefPrefix,
            result.fallbacks.map((f) => f.branch),
          ),
        });
      }
      return 0;
    }
    const reason = formatStopReason({ kind: 'save_failed', detail: saveFailureDetail(result) });
    this.#logger.error(
      { failures: result.failures, committed: result.committed, pushed: result.pushed, reason },
      'workspace could not be saved; keeping it for the next start',
    );
    await this.#notify({ type: 'stopping', reason });
    return SAVE_FAILED_EXIT_CODE;
  }
}
