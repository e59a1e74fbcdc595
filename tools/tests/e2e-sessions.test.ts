/**
 * Issue 3 end to end on the local stack: `session.assign` through the lifecycle queue gives
 * the session a worktree in a real container, and killing the session service in the middle
 * of a burst of commands loses nothing and applies nothing twice.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import type { BerthEvent, SessionJson } from '@berth/domain';
import {
  containerOf,
  eventually,
  http,
  isProcessAlive,
  onHost,
  projectRepository,
  queueDepth,
  receiveAnswer,
  sendToContainer,
  stackForSuite,
  tasksOf,
  workspaceRootOf,
} from './stack-helpers.ts';

const local = stackForSuite({ BERTH_IDLE_TIMEOUT: '10m', BERTH_MAX_SESSIONS: '10' });

const sessionPid = (): number =>
  Number(readFileSync(join(local.stack.dataDir, 'run', 'session.pid'), 'utf8').trim());

describe('sessions on the local stack', () => {
  it('assigns a session through the queue into a running container, whose agent opens its worktree', async () => {
    // Prepare
    const sessionId = `e2e-${randomUUID().slice(0, 8)}`;
    const key = { clientId: 'acme', projectId: 'site', userId: 'zoe' };
    await projectRepository(local.stack, key);

    // Act
    const { commandId } = await local.clients.commands.sendCommand('session.assign', {
      sessionId,
      ...key,
      threadId: 'thread-1',
    });
    const assigned = await local.clients.events.waitFor(
      { type: 'session.assigned', sessionId },
      60_000,
    );

    // Assess
    expect(assigned).toMatchObject({
      commandId,
      containerId: 'acme.site.zoe',
      payload: { containerId: 'acme.site.zoe', sessionCount: 1, reused: false },
    });
    const worktreePath = String(assigned.payload.worktreePath);
    expect(worktreePath.startsWith(`${workspaceRootOf(local.stack)}/`)).toBe(true);
    await eventually(
      'the worktree to exist',
      () => Promise.resolve(existsSync(onHost(local.stack, worktreePath)) || undefined),
      60_000,
    );
    const session = await http<{ session: SessionJson }>(
      local.stack,
      'GET',
      `/v1/sessions/${sessionId}`,
    );
    expect(session.status).toBe(200);
    expect(session.body.session).toMatchObject({
      sessionId,
      containerId: 'acme.site.zoe',
      threadId: 'thread-1',
      status: 'active',
    });
    // The same directory: once ready, the path is the one the agent reports, which in the
    // deploy rehearsal (agents run on the host, the task's volume a directory) is the host's.
    expect(onHost(local.stack, String(session.body.session.worktreePath))).toBe(
      onHost(local.stack, worktreePath),
    );
    const listed = await http<{ sessions: SessionJson[] }>(
      local.stack,
      'GET',
      '/v1/containers/acme.site.zoe/sessions',
    );
    expect(listed.body.sessions.map((s) => s.sessionId)).toEqual([sessionId]);
    const container = await containerOf(local.stack, 'acme.site.zoe');
    expect(container).toMatchObject({
      sessionCount: 1,
      sessions: [sessionId],
      idleSince: null,
    });
    // The agent answers the thread's messages on the container's output queue.
    const stored = await local.clients.store.getSession(sessionId);
    expect(stored?.inputQueueUrl).toEqual(expect.any(String));
    expect(stored?.outputQueueUrl).toEqual(expect.any(String));
    await sendToContainer(local.clients.sqs, stored?.inputQueueUrl ?? '', {
      sessionId,
      threadId: 'thread-1',
      text: 'hello from the e2e test',
    });
    const answer = await receiveAnswer(
      local.clients.sqs,
      stored?.outputQueueUrl ?? '',
      (a) => a.sessionId === sessionId,
      60_000,
    );
    expect(answer).toMatchObject({ text: 'hello from the e2e test', exitCode: 0 });
  }, 180_000);

  it('applies every command of a burst exactly once although the session service is killed in the middle of it', async () => {
    // Prepare: 4 containers, 9 sessions each; sessions 0-5 of each are also released
    const run = randomUUID().slice(0, 6);
    const keys = [0, 1, 2, 3].map((i) => ({
      clientId: 'crash',
      projectId: `p${run}`,
      userId: `u${i}`,
    }));
    const containerIds = keys.map((k) => `${k.clientId}.${k.projectId}.${k.userId}`);
    await projectRepository(local.stack, { clientId: 'crash', projectId: `p${run}` });
    // The containers are up before the burst, so the kill lands among session effects and
    // every count is exact. A kill while a container is being provisioned ends in a takeover
    // after a minute and a generation 2 (apps/session/tests/redelivery.test.ts covers it).
    await Promise.all(
      keys.map(async (key, k) => {
        const sessionId = `c${run}-${k}-warm`;
        await local.clients.commands.sendCommand('session.assign', { sessionId, ...key });
        await local.clients.events.waitFor({ type: 'session.assigned', sessionId }, 120_000);
      }),
    );
    const sessions = keys.flatMap((key, k) =>
      Array.from({ length: 9 }, (_, i) => ({
        sessionId: `c${run}-${k}-${i}`,
        key,
        containerId: containerIds[k] ?? '',
        released: i < 6,
      })),
    );
    const commands = [
      ...sessions.map((s) => ({
        type: 'session.assign' as const,
        payload: { sessionId: s.sessionId, ...s.key },
      })),
      ...sessions
        .filter((s) => s.released)
        .map((s) => ({ type: 'session.release' as const, payload: { sessionId: s.sessionId } })),
    ].sort(() => Math.random() - 0.5);
    expect(commands).toHaveLength(60);
    const pidBefore = sessionPid();
    const seen: BerthEvent[] = [];
    const outcomes = new Map<string, BerthEvent>();
    // Only this burst's sessions count (events of earlier tests on the stack may follow).
    const burst = new Set(sessions.map((s) => s.sessionId));
    const outcomeOf = (e: BerthEvent) =>
      (e.type === 'session.assigned' ||
        e.type === 'session.rejected' ||
        e.type === 'session.released') &&
      e.sessionId !== undefined &&
      burst.has(e.sessionId)
        ? `${e.type === 'session.released' ? 'r' : 'a'}:${e.sessionId}`
        : undefined;
    const expectedOutcomes = commands.length;
    /** Reads events until `enough` holds; keeps every event for the checks at the end. */
    const readUntil = async (enough: () => boolean, timeoutMs: number, what: string) => {
      const deadline = Date.now() + timeoutMs;
      while (!enough()) {
        if (Date.now() > deadline)
          throw new Error(
            `timed out waiting for ${what}: ${outcomes.size}/${expectedOutcomes} outcomes`,
          );
        const event = await local.clients.events.next(2_000);
        if (!event) continue;
        seen.push(event);
        const outcome = outcomeOf(event);
        if (outcome && !outcomes.has(outcome)) outcomes.set(outcome, event);
      }
    };

    // Act: the burst, and a SIGKILL as soon as the first effects show
    await Promise.all(commands.map((c) => local.clients.commands.sendCommand(c.type, c.payload)));
    await readUntil(() => outcomes.size >= 3, 120_000, 'the first effects');
    process.kill(pidBefore, 'SIGKILL');
    const outcomesAtKill = outcomes.size;
    const pidAfter = await eventually('the stack to restart the session service', () => {
      const pid = sessionPid();
      return Promise.resolve(pid !== pidBefore && isProcessAlive(pid) ? pid : undefined);
    });
    // Messages the killed process had received come back after their visibility timeout (30 s).
    await readUntil(
      () => outcomes.size >= expectedOutcomes,
      240_000,
      'every command to take effect',
    );
    await eventually(
      'the command queue to drain',
      async () =>
        (await queueDepth(local.clients.sqs, local.clients.messaging.lifecycleCommandsUrl)) === 0
          ? true
          : undefined,
      60_000,
    );

    // Assess: the kill really landed in the middle of the burst
    expect(isProcessAlive(pidBefore)).toBe(false);
    expect(pidAfter).not.toBe(pidBefore);
    expect(outcomesAtKill).toBeLessThan(expectedOutcomes);
    // Every session ends as its commands say, whatever order they were applied in.
    for (const s of sessions) {
      const { status, body } = await http<{ session: SessionJson }>(
        local.stack,
        'GET',
        `/v1/sessions/${s.sessionId}`,
      );
      expect({ sessionId: s.sessionId, status, sessionStatus: body.session.status }).toEqual({
        sessionId: s.sessionId,
        status: 200,
        sessionStatus: s.released ? 'released' : 'active',
      });
      const assign = outcomes.get(`a:${s.sessionId}`);
      if (s.released) {
        expect(outcomes.get(`r:${s.sessionId}`)?.eventId).toBe(
          `session/${s.sessionId}/session.released`,
        );
        // Assigned before its release, or refused because the release came first: never both.
        if (assign?.type === 'session.rejected') {
          expect(assign.payload.reason).toBe('released');
          expect(body.session.containerId).toBeNull();
        } else {
          expect(assign?.type).toBe('session.assigned');
          expect(body.session.containerId).toBe(s.containerId);
        }
      } else {
        expect(assign).toMatchObject({
          type: 'session.assigned',
          eventId: `session/${s.sessionId}/session.assigned`,
          payload: { containerId: s.containerId },
        });
        expect(body.session.containerId).toBe(s.containerId);
      }
    }
    // Counts exact: each container holds exactly its 3 unreleased sessions and the warm-up one, once each.
    for (const containerId of containerIds) {
      const warm = `c${run}-${containerIds.indexOf(containerId)}-warm`;
      const expected = [
        warm,
        ...sessions
          .filter((s) => s.containerId === containerId && !s.released)
          .map((s) => s.sessionId),
      ].sort();
      expect(expected).toHaveLength(4);
      const container = await containerOf(local.stack, containerId);
      expect(container).toMatchObject({ generation: 1, sessionCount: expected.length });
      expect([...container.sessions].sort()).toEqual(expected);
      const listed = await http<{ sessions: SessionJson[] }>(
        local.stack,
        'GET',
        `/v1/containers/${containerId}/sessions`,
      );
      expect(
        listed.body.sessions
          .filter((s) => s.status === 'active')
          .map((s) => s.sessionId)
          .sort(),
      ).toEqual(expected);
      // One task, the one its record names (a claimed pool member's is tagged with its slot only).
      const tasks = await tasksOf(local.stack, container);
      expect(tasks.map((t) => t.taskArn)).toEqual([container.taskArn]);
      expect(
        new Set(
          seen
            .filter((e) => e.type === 'container.created' && e.containerId === containerId)
            .map((e) => e.eventId),
        ).size,
      ).toBe(1);
    }
    // Nothing applied twice: one distinct event per effect, and repeats agree with the first.
    const assignedIds = new Set(
      seen.filter((e) => e.type === 'session.assigned').map((e) => e.sessionId),
    );
    const everAssigned = sessions.filter(
      (s) => outcomes.get(`a:${s.sessionId}`)?.type === 'session.assigned',
    );
    expect([...assignedIds].sort()).toEqual(everAssigned.map((s) => s.sessionId).sort());
    for (const event of seen.filter((e) => e.type === 'session.assigned')) {
      expect(event.payload.containerId).toBe(
        outcomes.get(`a:${event.sessionId}`)?.payload.containerId,
      );
    }
    expect(
      await queueDepth(local.clients.sqs, local.clients.messaging.lifecycleCommandsDlqUrl),
    ).toBe(0);
  }, 420_000);
});
