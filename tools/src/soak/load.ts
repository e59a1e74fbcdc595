/** The soak's load: what its users do, and what they see come back. */
import { setTimeout as delay } from 'node:timers/promises';
import {
  DeleteMessageCommand,
  ReceiveMessageCommand,
  SendMessageCommand,
} from '@aws-sdk/client-sqs';
import {
  containerIdOf,
  isLive,
  type BerthEvent,
  type ContainerJson,
  type ContainerKey,
} from '@berth/domain';
import { type CommandKind, type MarkerRecord, type SentCommand } from './checks.ts';
import {
  type User,
  type SessionModel,
  type Poller,
  increment,
  isMissingQueue,
  type SoakState,
} from './state.ts';

/** Session commands a user may have unanswered at once. */
const MAX_OUTSTANDING = 3;
/** After this long an unanswered command no longer holds its user back (its event may be lost). */
const OUTSTANDING_FOR_MS = 90_000;

/**
 * The load: users doing random session work (assign, release, touch, stop, discover, messages
 * to their threads) against the stack, the event stream followed into the run's model, and
 * the agents' answers read from their output queues.
 */
export class SoakLoad {
  private readonly state: SoakState;

  constructor(state: SoakState) {
    this.state = state;
  }

  users(): User[] {
    const options = this.state.options;
    return Array.from({ length: options.users }, (_, index) => ({
      index,
      clientId: `c${index % options.clients}`,
      userId: `u${index}`,
      random: this.state.random.fork(),
    }));
  }

  #projectsOf(user: User): ContainerKey[] {
    return Array.from({ length: this.state.options.projects }, (_, p) => ({
      clientId: user.clientId,
      projectId: `p${p}`,
      userId: user.userId,
    }));
  }

  progress(startedAt: number): void {
    const live = new Set<string>();
    for (const poller of this.state.pollers.values())
      if (!poller.final) live.add(poller.containerId);
    const sent = Object.values(this.state.figures.commandsSent).reduce((a, b) => a + b, 0);
    this.state.say(
      `soak: t=${Math.round((Date.now() - startedAt) / 1000)}s commands ${sent}, events ${this.state.history.length}, messages ${this.state.figures.messagesSent} (answered ${this.state.figures.answersOk}), containers with open queues ${live.size}, action errors ${this.state.figures.actionErrors}`,
    );
  }

  // ---- events and answers ----

  async pumpEvents(): Promise<void> {
    while (!this.state.eventsClosed) {
      let event: BerthEvent | undefined;
      try {
        event = await this.state.events.next(2_000);
      } catch {
        if (this.state.eventsClosed) return;
        await delay(500);
        continue;
      }
      if (!event) continue;
      this.state.lastEventAt = Date.now();
      if (this.state.eventIds.has(event.eventId)) {
        this.state.figures.eventDuplicates += 1;
        continue;
      }
      this.state.eventIds.add(event.eventId);
      this.state.history.push(event);
      this.#apply(event);
    }
  }

  #apply(event: BerthEvent): void {
    const session = event.sessionId ? this.state.sessions.get(event.sessionId) : undefined;
    switch (event.type) {
      case 'session.assigned': {
        const payload = event.payload as {
          inputQueueUrl?: string | null;
          outputQueueUrl?: string | null;
        };
        if (session && session.state !== 'ended') session.state = 'active';
        if (session) session.inputQueueUrl = payload.inputQueueUrl ?? undefined;
        return;
      }
      case 'session.released':
      case 'session.expired':
        if (session) session.state = 'ended';
        return;
      case 'session.rejected':
        if (session?.state === 'pending') session.state = 'rejected';
        return;
      case 'command.rejected':
      case 'session.ready':
      case 'session.checkpointed':
      case 'session.reverted':
        return;
      case 'container.created':
      case 'container.running':
      case 'container.idle':
      case 'container.expiring':
      case 'container.terminating':
      case 'container.stopped':
      case 'container.failed': {
        const container = (event.payload as { container?: ContainerJson }).container;
        if (!container) return;
        this.state.containerIds.add(container.containerId);
        if (container.outputQueueUrl) this.#poll(container);
        return;
      }
    }
  }

  /** Reads a container generation's answers until its queue is gone or it is final and empty. */
  #poll(container: ContainerJson): void {
    const url = container.outputQueueUrl;
    if (!url) return;
    const existing = this.state.pollers.get(url);
    if (existing) {
      if (!isLive(container.status)) existing.final = true;
      return;
    }
    const poller: Poller = {
      url,
      containerId: container.containerId,
      generation: container.generation,
      final: !isLive(container.status),
    };
    this.state.pollers.set(url, poller);
    const run = this.#pollLoop(poller).finally(() => this.state.pollerRuns.delete(run));
    this.state.pollerRuns.add(run);
  }

  async #pollLoop(poller: Poller): Promise<void> {
    while (!this.state.pollersStopped) {
      try {
        const { Messages = [] } = await this.state.pollSqs.send(
          new ReceiveMessageCommand({
            QueueUrl: poller.url,
            MaxNumberOfMessages: 10,
            WaitTimeSeconds: 1,
          }),
        );
        for (const message of Messages) {
          this.#answer(message.Body, poller.generation);
          if (message.ReceiptHandle) {
            await this.state.pollSqs
              .send(
                new DeleteMessageCommand({
                  QueueUrl: poller.url,
                  ReceiptHandle: message.ReceiptHandle,
                }),
              )
              .catch(() => undefined);
          }
        }
        if (Messages.length === 0 && poller.final) return;
      } catch (error) {
        if (isMissingQueue(error)) return;
        await delay(500);
      }
    }
  }

  #answer(body: string | undefined, generation: number): void {
    let answer: { text?: unknown; exitCode?: unknown };
    try {
      answer = JSON.parse(body ?? '') as typeof answer;
    } catch {
      return;
    }
    if (typeof answer.text !== 'string') return;
    const marker = this.state.markers.get(answer.text.trim());
    if (!marker) return;
    const exitCode = typeof answer.exitCode === 'number' ? answer.exitCode : -1;
    if (marker.exitCode === 0) return;
    marker.exitCode = exitCode;
    marker.answeredAt = Date.now();
    marker.generation = generation;
    if (exitCode === 0) this.state.figures.answersOk += 1;
    else this.state.figures.answersFailed += 1;
  }

  // ---- the load ----

  async userLoop(user: User, until: number): Promise<void> {
    const [min, max] = this.state.options.thinkMs;
    while (Date.now() < until && !this.state.stackExited) {
      await delay(user.random.int(min, max));
      if (Date.now() >= until) break;
      try {
        await this.#act(user);
      } catch (error) {
        this.state.figures.actionErrors += 1;
        if (this.state.actionErrorSamples.length < 10) {
          this.state.actionErrorSamples.push(
            error instanceof Error ? `${error.name}: ${error.message}` : String(error),
          );
        }
      }
    }
  }

  async #act(user: User): Promise<void> {
    const random = user.random;
    const mine = [...this.state.sessions.values()].filter((s) => s.user === user);
    const open = mine.filter(
      (s) => (s.state === 'active' || s.state === 'pending') && !s.releaseSent,
    );
    const active = mine.filter((s) => s.state === 'active' && !s.releaseSent);
    const reachable = active.filter((s) => s.inputQueueUrl !== undefined);
    // A user waits for its sessions as a person would: with a few answers outstanding it
    // sends no more session commands, so the load follows what berth can handle on this
    // machine instead of piling up a queue that would never drain.
    const now = Date.now();
    const waiting = mine.filter(
      (s) =>
        (s.state === 'pending' || (s.releaseSent && s.state !== 'ended')) &&
        now - s.lastCommandAt < OUTSTANDING_FOR_MS,
    ).length;
    const busy = waiting >= MAX_OUTSTANDING;
    const action = random.weighted({
      assign: busy ? 0 : open.length >= 6 ? 3 : 24,
      release: busy || open.length === 0 ? 0 : open.length >= 4 ? 30 : 12,
      touch: active.length === 0 ? 0 : 10,
      message: reachable.length === 0 ? 0 : 30,
      discover: 8,
      stop: busy ? 0 : 3,
      duplicate: busy || this.state.commands.size === 0 ? 0 : 5,
      invalid: busy ? 0 : 1,
    });
    switch (action) {
      case 'assign': {
        const key = random.pick(this.#projectsOf(user));
        if (!key) return;
        const session = this.#newSession(user, key);
        await this.#sendCommand(
          'session.assign',
          {
            sessionId: session.sessionId,
            ...key,
            ...(session.threadId !== session.sessionId ? { threadId: session.threadId } : {}),
          },
          { sessionId: session.sessionId },
        );
        // Now and then the release goes out right behind its assign, so that SQS may deliver
        // them in either order.
        if (random.chance(0.08)) await this.release(session);
        return;
      }
      case 'release': {
        const session = random.pick(open);
        if (session) await this.release(session);
        return;
      }
      case 'touch': {
        const session = random.pick(active);
        if (session)
          await this.#sendCommand(
            'session.touch',
            { sessionId: session.sessionId },
            { sessionId: session.sessionId },
          );
        return;
      }
      case 'message': {
        const session = random.pick(reachable);
        if (session) await this.#message(session);
        return;
      }
      case 'discover': {
        const key = random.pick(this.#projectsOf(user));
        if (key) await this.#discover(key);
        return;
      }
      case 'stop': {
        const key = random.pick(this.#projectsOf(user));
        if (!key) return;
        const containerId = containerIdOf(key);
        if (random.chance(0.5)) {
          await this.#sendCommand(
            'container.stop',
            { containerId, reason: 'soak' },
            { containerId },
          );
        } else {
          await this.#httpStop(containerId);
        }
        return;
      }
      case 'duplicate': {
        const sent = [...this.state.commands.values()].filter((c) => c.type !== 'invalid');
        const original = random.pick(sent.slice(-50));
        if (!original) return;
        // Half of them twice at once, so two deliveries may be handled at the same time.
        const copies = random.next() < 0.5 ? 2 : 1;
        await Promise.all(
          Array.from({ length: copies }, () => this.state.sender.send(original.body)),
        );
        original.copies += copies;
        this.state.figures.duplicatesSent += copies;
        if (copies === 2) this.state.figures.duplicatesAtOnce += 1;
        return;
      }
      case 'invalid': {
        const commandId = this.#nextId('bad');
        // A well-formed envelope with a bad field: rejected once, naming the field.
        const body = JSON.stringify({
          type: 'session.assign',
          commandId,
          payload: {
            sessionId: this.#nextId('s'),
            clientId: 'Not_Valid',
            projectId: 'p0',
            userId: user.userId,
          },
        });
        await this.state.sender.send(body);
        this.#record({ commandId, type: 'invalid', sentAt: Date.now(), copies: 1, body });
        return;
      }
    }
  }

  #nextId(prefix: string): string {
    this.state.counter += 1;
    return `${prefix}-${this.state.tag}-${this.state.counter}`;
  }

  #newSession(user: User, key: ContainerKey): SessionModel {
    const sessionId = this.#nextId('s');
    // A few threads per user and project, so that threads outlive containers and are
    // restored from their branch; now and then no threadId (it is then the sessionId).
    const threadId = user.random.chance(0.15)
      ? sessionId
      : `${user.userId}.t${user.random.int(1, 3)}`;
    const session: SessionModel = {
      sessionId,
      user,
      key,
      containerId: containerIdOf(key),
      threadId,
      state: 'pending',
      inputQueueUrl: undefined,
      releaseSent: false,
      lastCommandAt: Date.now(),
    };
    this.state.sessions.set(sessionId, session);
    this.state.containerIds.add(session.containerId);
    this.state.figures.sessions += 1;
    return session;
  }

  #record(command: SentCommand & { body: string }): void {
    this.state.commands.set(command.commandId, command);
    increment(this.state.figures.commandsSent, command.type);
  }

  async #sendCommand(
    type: Exclude<CommandKind, 'invalid'>,
    payload: Record<string, unknown>,
    about: { sessionId?: string; containerId?: string },
  ): Promise<void> {
    const commandId = this.#nextId('cmd');
    const body = JSON.stringify({ type, commandId, payload });
    const sentAt = Date.now();
    await this.state.sender.send(body);
    this.#record({ commandId, type, sentAt, copies: 1, body, ...about });
  }

  async release(session: SessionModel): Promise<void> {
    session.releaseSent = true;
    session.lastCommandAt = Date.now();
    await this.#sendCommand(
      'session.release',
      { sessionId: session.sessionId },
      { sessionId: session.sessionId },
    );
  }

  async #message(session: SessionModel): Promise<void> {
    const url = session.inputQueueUrl;
    if (!url) return;
    this.state.counter += 1;
    const marker = `soak ${this.state.tag} m${this.state.counter} ${session.sessionId}`;
    const record: MarkerRecord = {
      marker,
      sessionId: session.sessionId,
      threadId: session.threadId,
      clientId: session.key.clientId,
      projectId: session.key.projectId,
      containerId: session.containerId,
      sentAt: Date.now(),
      answeredAt: undefined,
      exitCode: undefined,
    };
    this.state.markers.set(marker, record);
    try {
      await this.state.sqs.send(
        new SendMessageCommand({
          QueueUrl: url,
          MessageBody: JSON.stringify({
            sessionId: session.sessionId,
            threadId: session.threadId,
            text: marker,
          }),
        }),
      );
      this.state.figures.messagesSent += 1;
    } catch (error) {
      // The container stopped since the session was assigned: its queue is gone.
      this.state.markers.delete(marker);
      if (isMissingQueue(error)) this.state.figures.messagesUndeliverable += 1;
      else throw error;
    }
  }

  async #discover(key: ContainerKey): Promise<void> {
    this.state.containerIds.add(containerIdOf(key));
    const status = await this.state.http('POST', '/v1/containers/discover', key);
    increment(this.state.figures.httpDiscovers, String(status));
  }

  async #httpStop(containerId: string): Promise<void> {
    const status = await this.state.http('POST', `/v1/containers/${containerId}/stop`, {
      reason: 'soak',
    });
    increment(this.state.figures.httpStops, String(status));
  }

  // ---- settling ----
}
