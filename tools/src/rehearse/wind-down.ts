/**
 * The rehearsal's last act before it stops: every session still active is released through
 * the lifecycle command queue (as a chat front end would), and then every live container must
 * be saved and stopped by the deployed reaper once idle, its final task event handled by the
 * task watcher. This drives the code paths the end-to-end suites leave to `npm test`'s own
 * stacks (idle stop, queue retirement, session release), so the IAM proof sees their calls.
 */
import { setTimeout as delay } from 'node:timers/promises';
import type { ContainerJson, SessionJson } from '@berth/domain';
import { CommandSender, createSqsClient } from '@berth/messaging';

export interface WindDownOptions {
  /** Discovery's URL, as the load balancer reaches it. */
  url: string;
  adminToken: string;
  lifecycleCommandsUrl: string;
  /** How long every container may take to be stopped once its sessions are released. */
  timeoutMs: number;
  say: (line: string) => void;
}

const LIVE = new Set(['starting', 'running', 'terminating']);

/** Failures found; empty when every container ended stopped. */
export async function windDown(options: WindDownOptions): Promise<string[]> {
  const api = async <T>(path: string): Promise<T> => {
    const response = await fetch(`${options.url}${path}`, {
      headers: { authorization: `Bearer ${options.adminToken}` },
    });
    if (!response.ok) throw new Error(`GET ${path} answered ${response.status}`);
    return (await response.json()) as T;
  };
  // An admin's unfiltered listing: every container, read from status-index (no Scan).
  const listAll = async (): Promise<ContainerJson[]> => {
    const all: ContainerJson[] = [];
    let cursor: string | null = null;
    do {
      const query: string = cursor === null ? '' : `&cursor=${encodeURIComponent(cursor)}`;
      const page = await api<{ containers: ContainerJson[]; nextCursor: string | null }>(
        `/v1/containers?limit=100${query}`,
      );
      all.push(...page.containers);
      cursor = page.nextCursor;
    } while (cursor !== null);
    return all;
  };

  const live = (await listAll()).filter((container) => LIVE.has(container.status));
  const sqs = createSqsClient();
  let released = 0;
  try {
    const commands = new CommandSender({ sqs, queueUrl: options.lifecycleCommandsUrl });
    for (const container of live.filter((c) => c.sessionCount > 0)) {
      const { sessions } = await api<{ sessions: SessionJson[] }>(
        `/v1/containers/${container.containerId}/sessions`,
      );
      for (const session of sessions.filter((s) => s.status === 'active')) {
        await commands.sendCommand('session.release', { sessionId: session.sessionId });
        released += 1;
      }
    }
  } finally {
    sqs.destroy();
  }
  options.say(
    `rehearsal: winding down: ${live.length} live containers, ${released} sessions released; the reaper must stop each once idle`,
  );

  const deadline = Date.now() + options.timeoutMs;
  let ended: ContainerJson[] = [];
  for (;;) {
    const ids = new Set(live.map((container) => container.containerId));
    ended = (await listAll()).filter((container) => ids.has(container.containerId));
    const remaining = ended.filter((container) => LIVE.has(container.status));
    if (remaining.length === 0) break;
    if (Date.now() > deadline) {
      return [
        `not stopped within ${Math.round(options.timeoutMs / 1000)} s of their sessions' release: ${remaining
          .map((container) => `${container.containerId} (${container.status})`)
          .join(', ')}`,
      ];
    }
    await delay(1000);
  }
  const failed = ended.filter((container) => container.status !== 'stopped');
  options.say(
    `rehearsal: every container stopped (${ended.length - failed.length} stopped, ${failed.length} otherwise)`,
  );
  return failed.map(
    (container) =>
      `${container.containerId} ended ${container.status} instead of stopped: ${container.stopReason ?? 'no reason'}`,
  );
}
