/** The soak's settle-and-check phase. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { GetQueueAttributesCommand, ReceiveMessageCommand } from '@aws-sdk/client-sqs';
import {
  LIVE_STATUSES,
  isLive,
  parseDuration,
  parseStopReason,
  threadBranch,
  type ContainerRecord,
  type SessionRecord,
} from '@berth/domain';
import type { Chaos } from './chaos.ts';
import { fallbackRefsFor, reportedFallbacks } from './fallback-refs.ts';
import {
  checkCommands,
  checkOneOutcome,
  checkEventsOfStore,
  checkGenerations,
  checkMarkers,
  checkStuckTransitional,
  checkTaskOverlap,
  commandOutcomes,
  generationSpans,
  markerFileKey,
  sessionCountProblem,
  taskSpansFromLog,
  type GenerationSpan,
  type MarkerRecord,
} from './checks.ts';
import { inBatches, execFileAsync, type SoakState } from './state.ts';
import type { DeadLetter } from './report.ts';
import type { SoakLoad } from './load.ts';

/**
 * After the load: waits for the stack to settle (queues drained, every container stopped),
 * then compares the store, the event history, the dead-letter queues, the task log and the
 * git repositories with what the load asked of berth, using the rules in `checks.ts`.
 */
export class SoakChecks {
  private readonly state: SoakState;
  private readonly load: SoakLoad;

  constructor(state: SoakState, load: SoakLoad) {
    this.state = state;
    this.load = load;
  }

  async #waitFor(
    what: string,
    check: () => Promise<boolean>,
    timeoutMs: number,
    everyMs = 1_000,
  ): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (this.state.stackExited) {
        this.state.violation(
          'stack',
          'stack',
          `the stack exited by itself while waiting for ${what}`,
        );
        return false;
      }
      if (await check().catch(() => false)) return true;
      await delay(everyMs);
    }
    return false;
  }

  async #queueDepth(url: string): Promise<number> {
    const { Attributes = {} } = await this.state.sqs.send(
      new GetQueueAttributesCommand({
        QueueUrl: url,
        AttributeNames: [
          'ApproximateNumberOfMessages',
          'ApproximateNumberOfMessagesNotVisible',
          'ApproximateNumberOfMessagesDelayed',
        ],
      }),
    );
    return (
      Number(Attributes.ApproximateNumberOfMessages ?? 0) +
      Number(Attributes.ApproximateNumberOfMessagesNotVisible ?? 0) +
      Number(Attributes.ApproximateNumberOfMessagesDelayed ?? 0)
    );
  }

  /** Both queues berth consumes are empty three polls in a row. */
  async #waitDrained(what: string): Promise<void> {
    let emptyPolls = 0;
    const drained = await this.#waitFor(
      what,
      async () => {
        const depths = await Promise.all([
          this.#queueDepth(this.state.messaging.lifecycleCommandsUrl),
          this.#queueDepth(this.state.messaging.taskEventsUrl),
        ]);
        emptyPolls = depths.every((depth) => depth === 0) ? emptyPolls + 1 : 0;
        return emptyPolls >= 3;
      },
      this.state.options.settleTimeoutMs,
    );
    if (!drained) {
      const depths = await Promise.all([
        this.#queueDepth(this.state.messaging.lifecycleCommandsUrl).catch(() => -1),
        this.#queueDepth(this.state.messaging.taskEventsUrl).catch(() => -1),
      ]);
      this.state.violation(
        'queue-not-drained',
        what,
        `after ${Math.round(this.state.options.settleTimeoutMs / 1000)} s: ${depths[0]} on berth-lifecycle-commands, ${depths[1]} on berth-task-events`,
      );
    }
  }

  async #servicesUp(chaos: Chaos): Promise<void> {
    const up = await this.#waitFor(
      'every service to run again',
      async () => chaos.allServicesReady() && (await this.state.http('GET', '/readyz')) === 200,
      this.state.options.settleTimeoutMs,
    );
    if (!up)
      this.state.violation(
        'stack',
        'services',
        'not every service was running and ready after the load',
      );
  }

  async settleAndCheck(chaos: Chaos): Promise<void> {
    const settle = this.state.options.settleTimeoutMs;
    this.state.say('soak: load stopped; fault windows closed; waiting for the queues to drain');
    await this.#servicesUp(chaos);
    await this.#waitDrained('commands sent during the load');

    // While sessions are still active: every container's list must match its sessions.
    this.state.say('soak: checking session counts while sessions are active');
    await this.#checkSessionCounts('with sessions active');

    this.state.say('soak: releasing every session');
    for (const session of this.state.sessions.values()) {
      if (session.state !== 'ended') await this.load.release(session);
    }
    await this.#waitDrained('the final releases');

    this.state.say('soak: waiting for every container to stop');
    let stopped = await this.#waitAllStopped();

    this.state.say('soak: checking the thread branches');
    const recovered = await this.#checkRepositories();
    if (recovered) stopped = await this.#waitAllStopped();

    const live = await this.#liveContainers();
    for (const container of live) {
      this.state.violation(
        'container-not-stopped',
        `${container.containerId}#${container.generation}`,
        `${container.status} with ${container.sessions.length} sessions, idle since ${container.idleSince ?? 'never'}${stopped ? '' : ` (waited ${Math.round(settle / 1000)} s)`}`,
      );
    }
    for (const task of await this.state.runtime.listTasks()) {
      this.state.violation(
        'task-left',
        task.taskArn,
        `task of ${task.containerId ?? '?'} generation ${task.generation ?? '?'} is ${task.lastStatus}`,
      );
    }
    await this.#checkSessionCounts('at the end');
    await this.#checkStoreAndHistory();
  }

  /** No live container and no task, then a few quiet seconds for the last events. */
  async #waitAllStopped(): Promise<boolean> {
    const stopped = await this.#waitFor(
      'every container to stop',
      async () =>
        (await this.#liveContainers()).length === 0 &&
        (await this.state.runtime.listTasks()).length === 0,
      this.state.options.settleTimeoutMs,
      2_000,
    );
    await this.#waitFor(
      'the events to stop arriving',
      () => Promise.resolve(Date.now() - this.state.lastEventAt > 4_000),
      60_000,
      500,
    );
    await this.#waitDrained('the last task events');
    return stopped;
  }

  /** Every container generation the store holds as live. */
  async #liveContainers(): Promise<ContainerRecord[]> {
    const found = new Map<string, ContainerRecord>();
    for (const status of LIVE_STATUSES) {
      for (const container of await this.state.store.listContainersByStatus(status, 1000)) {
        found.set(container.containerId, container);
      }
    }
    // The status index is eventually consistent on AWS: read the known ones directly too.
    const known = await inBatches([...this.state.containerIds], 8, (id) =>
      this.state.store.getContainer(id),
    );
    for (const container of known)
      if (container && isLive(container.status)) found.set(container.containerId, container);
    return [...found.values()];
  }

  /**
   * A container's list against its session records, read so that the container did not change
   * in between (same version before and after); a disagreement must hold over a few reads.
   */
  async #checkSessionCounts(when: string): Promise<void> {
    const maxSessions = Number(this.state.options.stackEnv.BERTH_MAX_SESSIONS ?? '10');
    await inBatches([...this.state.containerIds], 4, async (containerId) => {
      let problem: string | undefined;
      for (let attempt = 0; attempt < 5; attempt += 1) {
        const before = await this.state.store.getContainer(containerId);
        if (!before) return;
        const sessions = await this.state.store.listSessionsByContainer(containerId);
        const after = await this.state.store.getContainer(containerId);
        if (after?.version !== before.version) {
          await delay(300);
          continue;
        }
        problem = sessionCountProblem(before, sessions, maxSessions);
        if (problem === undefined) return;
        await delay(1_000);
      }
      if (problem !== undefined)
        this.state.violation('session-count', containerId, `${when}: ${problem}`);
    });
  }

  async #checkStoreAndHistory(): Promise<void> {
    const sessions = (
      await inBatches([...this.state.sessions.keys()], 8, (sessionId) =>
        this.state.store.getSession(sessionId),
      )
    ).filter((s): s is SessionRecord => s !== undefined);
    for (const model of this.state.sessions.values()) {
      const stored = sessions.find((s) => s.sessionId === model.sessionId);
      if (stored?.status === 'active') {
        this.state.violation(
          'session-not-released',
          model.sessionId,
          `still active on ${stored.containerId ?? '?'} after its release`,
        );
      }
    }
    const containers = (
      await inBatches([...this.state.containerIds], 8, (containerId) =>
        this.state.store.getContainer(containerId),
      )
    ).filter((c): c is ContainerRecord => c !== undefined);

    const deadLetters = await this.#deadLetters();
    this.state.deadLetterList = deadLetters;
    const deadLettered = new Set(deadLetters.flatMap((d) => (d.commandId ? [d.commandId] : [])));
    const commands = [...this.state.commands.values()];
    const outcomes = commandOutcomes(commands, this.state.history, deadLettered);
    for (const outcome of outcomes.values()) this.state.figures.commandOutcomes[outcome] += 1;

    this.state.violations.push(
      ...checkGenerations(this.state.history),
      ...checkCommands(commands, outcomes),
      ...checkOneOutcome(commands, this.state.history),
      ...checkEventsOfStore(containers, sessions, this.state.history),
      ...checkStuckTransitional(containers, Date.now(), this.#transitionalTimeouts()),
    );
  }

  /** The stack's own timeouts, as the reaper applies them (libs/core/src/reaper.ts). */
  #transitionalTimeouts(): { startTimeoutMs: number; stopTimeoutMs: number; slackMs: number } {
    const env = this.state.options.stackEnv;
    const read = (name: string, fallback: string): number =>
      parseDuration(env[name] ?? fallback, name);
    return {
      startTimeoutMs: read('BERTH_START_TIMEOUT', '5m'),
      // The reaper forces a stop once the grace period and 5 s more have gone by.
      stopTimeoutMs: read('BERTH_SHUTDOWN_GRACE', '60s') + 5_000,
      // A few reaper ticks, and the forced stop's own grace.
      slackMs: 4 * read('BERTH_REAPER_TICK', '1s') + read('BERTH_SHUTDOWN_GRACE', '60s'),
    };
  }

  /** Everything in the dead-letter queues, with the reason the consumer logged. */
  async #deadLetters(): Promise<DeadLetter[]> {
    const letters: DeadLetter[] = [];
    for (const [queue, url, log] of [
      ['berth-lifecycle-commands-dlq', this.state.messaging.lifecycleCommandsDlqUrl, 'session.log'],
      ['berth-agent-reports-dlq', this.state.messaging.agentReportsDlqUrl, 'session.log'],
      ['berth-task-events-dlq', this.state.messaging.taskEventsDlqUrl, 'task-watcher.log'],
      ['berth-history-events-dlq', this.state.messaging.historyEventsDlqUrl, 'task-watcher.log'],
    ] as const) {
      const seen = new Set<string>();
      for (;;) {
        const { Messages = [] } = await this.state.sqs.send(
          new ReceiveMessageCommand({
            QueueUrl: url,
            MaxNumberOfMessages: 10,
            WaitTimeSeconds: 0,
            VisibilityTimeout: 300,
            MessageSystemAttributeNames: ['ApproximateReceiveCount'],
          }),
        );
        const fresh = Messages.filter((m) => m.MessageId && !seen.has(m.MessageId));
        if (fresh.length === 0) break;
        for (const message of fresh) {
          seen.add(message.MessageId ?? '');
          let body: { commandId?: unknown; type?: unknown; id?: unknown; 'detail-type'?: unknown } =
            {};
          try {
            body = JSON.parse(message.Body ?? '') as typeof body;
          } catch {
            // Not JSON: reported as it is.
          }
          const commandId = typeof body.commandId === 'string' ? body.commandId : undefined;
          letters.push({
            queue,
            commandId,
            type:
              typeof body.type === 'string'
                ? body.type
                : typeof body['detail-type'] === 'string'
                  ? body['detail-type']
                  : undefined,
            receiveCount: Number(message.Attributes?.ApproximateReceiveCount ?? 0),
            reason: this.#reasonFromLog(
              log,
              commandId ?? (typeof body.id === 'string' ? body.id : undefined),
            ),
          });
        }
      }
    }
    this.state.figures.deadLettered = letters.length;
    return letters;
  }

  /** The last error the consumer logged about this command (pino JSON lines). */
  #reasonFromLog(logName: string, needle: string | undefined): string {
    if (!needle) return 'unknown (no id in the message)';
    let log = '';
    try {
      log = readFileSync(join(this.state.stack.dataDir, 'logs', logName), 'utf8');
    } catch {
      return 'unknown (no log)';
    }
    let reason = 'unknown (nothing logged about it)';
    for (const line of log.split('\n')) {
      if (!line.includes(needle)) continue;
      try {
        const entry = JSON.parse(line) as {
          msg?: string;
          err?: { type?: string; message?: string };
        };
        if (entry.err)
          reason = `${entry.msg ?? ''}: ${entry.err.type ?? 'Error'}: ${entry.err.message ?? ''}`;
      } catch {
        // Not a log entry.
      }
    }
    return reason;
  }

  // ---- after the stack has stopped ----

  /** CHAT.md of every thread branch a marker was answered in. */
  async #threadFiles(markers: readonly MarkerRecord[]): Promise<Map<string, string | undefined>> {
    const files = new Map<string, string | undefined>();
    const fallbacks = reportedFallbacks(this.state.history);
    const show = async (repo: string, ref: string): Promise<string | undefined> => {
      try {
        const { stdout } = await execFileAsync(
          'git',
          ['--git-dir', repo, 'show', `${ref}:CHAT.md`],
          {
            maxBuffer: 64 * 1024 * 1024,
          },
        );
        return stdout;
      } catch {
        return undefined;
      }
    };
    const fallbackChecked = new Set<string>();
    const branchFiles = new Map<string, string | undefined>();
    for (const marker of markers) {
      const key = markerFileKey(marker);
      const repo = join(
        this.state.stack.dataDir,
        'repos',
        marker.clientId,
        `${marker.projectId}.git`,
      );
      const branch = threadBranch(marker.containerId.split('.')[2] ?? '', marker.threadId);
      if (!files.has(key)) {
        const onBranch = await show(repo, branch);
        files.set(key, onBranch);
        branchFiles.set(key, onBranch);
      }
      // Or on a fallback ref reported for the container (the remote moved; it did not merge).
      const containerKey = `${key}@${marker.containerId}`;
      if (fallbackChecked.has(containerKey)) continue;
      fallbackChecked.add(containerKey);
      for (const ref of fallbackRefsFor(fallbacks, marker.containerId, branch)) {
        const saved = await show(repo, ref);
        if (saved !== undefined) files.set(key, `${files.get(key) ?? ''}\n${saved}`);
      }
    }
    const lines = (text: string | undefined): Set<string> => new Set((text ?? '').split('\n'));
    for (const marker of markers) {
      const key = markerFileKey(marker);
      if (
        !lines(branchFiles.get(key)).has(marker.marker) &&
        lines(files.get(key)).has(marker.marker)
      )
        this.state.onFallbackRefs.add(marker.marker);
    }
    this.state.figures.markersOnFallbackRefs = this.state.onFallbackRefs.size;
    return files;
  }

  /**
   * Every marker answered with exit code 0 must be on its thread's branch. A generation that
   * did not stop cleanly (forced after the grace period, save_failed, crashed, ...) may have
   * left its work in the workspace instead; the contract has the next start of that container
   * push it first. So such containers are started once more and stopped, and only what is
   * still missing then is a violation. Returns whether containers were restarted.
   */
  async #checkRepositories(): Promise<boolean> {
    const markers = [...this.state.markers.values()].filter((m) => m.exitCode === 0);
    const endOf = (marker: MarkerRecord): GenerationSpan | undefined =>
      generationSpans(this.state.history)
        .get(marker.containerId)
        ?.find((g) => g.generation === marker.generation);
    const describeEnd = (marker: MarkerRecord): string | undefined => {
      const span = endOf(marker);
      return span?.finalStatus
        ? `${span.finalStatus} (${span.stopReason ?? 'no reason'})`
        : undefined;
    };
    let missing = checkMarkers(markers, await this.#threadFiles(markers), describeEnd);
    const cleanKinds = ['idle', 'manual'];
    const toRecover = new Set(
      missing.flatMap((violation) => {
        const marker = this.state.markers.get(violation.subject);
        const kind = parseStopReason(marker ? endOf(marker)?.stopReason : undefined)?.kind;
        return marker && !cleanKinds.includes(kind ?? '') ? [marker.containerId] : [];
      }),
    );
    if (toRecover.size > 0) {
      this.state.say(
        `soak: ${missing.length} lines not on their branch; starting ${[...toRecover].join(', ')} again to push what an unclean stop left`,
      );
      for (const containerId of toRecover) await this.#restartToRecover(containerId);
      await this.#waitAllStopped();
      const before = missing.length;
      missing = checkMarkers(markers, await this.#threadFiles(markers), describeEnd);
      this.state.figures.markersRecovered = before - missing.length;
    }
    this.state.figures.markersVerified = markers.length - missing.length;
    this.state.violations.push(...missing);
    return toRecover.size > 0;
  }

  /** Discover (start) a container, wait until it runs, then stop it over HTTP. */
  async #restartToRecover(containerId: string): Promise<void> {
    const [clientId, projectId, userId] = containerId.split('.');
    this.state.figures.recoveryRestarts += 1;
    const running = await this.#waitFor(
      `${containerId} to run again`,
      async () => {
        const answer = await this.state.httpJson('POST', '/v1/containers/discover?wait=30', {
          clientId,
          projectId,
          userId,
        });
        return (answer.body as { container?: { status?: string } }).container?.status === 'running';
      },
      this.state.options.settleTimeoutMs,
      2_000,
    );
    if (!running) {
      this.state.violation(
        'stack',
        containerId,
        'could not be started again to recover its workspace',
      );
      return;
    }
    await this.state.http('POST', `/v1/containers/${containerId}/stop`, {
      reason: 'soak recovery',
    });
  }

  checkTasks(): void {
    let log = '';
    try {
      log = readFileSync(join(this.state.stack.dataDir, 'logs', 'local-runtime.log'), 'utf8');
    } catch {
      return;
    }
    const tasks = taskSpansFromLog(log);
    this.state.figures.tasksRun = tasks.length;
    this.state.violations.push(...checkTaskOverlap(tasks));
  }
}
