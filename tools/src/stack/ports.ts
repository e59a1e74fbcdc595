/**
 * Before the local stack starts anything: are its ports free, and if not, who holds them?
 * The holder is looked up the way `ss -ltnp` does it on Linux, from /proc: the listening
 * socket's inode in /proc/net/tcp{,6}, then the process with that socket among its open
 * files. Elsewhere, or for another user's process, the port is named without its holder.
 */
import { once } from 'node:events';
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { createServer } from 'node:net';

export interface WantedPort {
  port: number;
  /** The variable that sets it, for the message. */
  variable: string;
}

export interface BusyPort extends WantedPort {
  reason: string;
  holder: { pid: number; command: string } | undefined;
}

/** Binds and releases the port, as the service that wants it would. */
async function bindProblem(port: number): Promise<string | undefined> {
  const server = createServer();
  server.listen({ port, host: '127.0.0.1', exclusive: true });
  try {
    await once(server, 'listening');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    return code === 'EADDRINUSE' ? 'already in use' : `cannot be bound (${code ?? String(error)})`;
  }
  server.close();
  await once(server, 'close');
  return undefined;
}

/** The inodes of sockets listening on the port (state 0A is TCP_LISTEN). */
function listeningInodes(port: number): Set<string> {
  const inodes = new Set<string>();
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = readFileSync(table, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/);
      const local = fields[1];
      if (!local || fields[3] !== '0A') continue;
      const localPort = Number.parseInt(local.slice(local.lastIndexOf(':') + 1), 16);
      if (localPort === port && fields[9]) inodes.add(fields[9]);
    }
  }
  return inodes;
}

export function portHolder(port: number): { pid: number; command: string } | undefined {
  const inodes = listeningInodes(port);
  if (inodes.size === 0) return undefined;
  const sockets = new Set([...inodes].map((inode) => `socket:[${inode}]`));
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((entry) => /^\d+$/.test(entry));
  } catch {
    return undefined;
  }
  for (const pid of pids) {
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue; // gone, or not ours to look at
    }
    for (const fd of fds) {
      let target: string;
      try {
        target = readlinkSync(`/proc/${pid}/fd/${fd}`);
      } catch {
        continue;
      }
      if (!sockets.has(target)) continue;
      let command = '?';
      try {
        command = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim();
      } catch {
        // the process ended meanwhile: the pid is still worth naming
      }
      return { pid: Number(pid), command };
    }
  }
  return undefined;
}

export async function busyPorts(wanted: WantedPort[]): Promise<BusyPort[]> {
  const busy: BusyPort[] = [];
  for (const entry of wanted) {
    const reason = await bindProblem(entry.port);
    if (reason) busy.push({ ...entry, reason, holder: portHolder(entry.port) });
  }
  return busy;
}

export function describeBusyPort({ port, variable, reason, holder }: BusyPort): string {
  const by = holder
    ? `; held by pid ${holder.pid} (${holder.command.slice(0, 160)})`
    : '; the process holding it is not visible to this user';
  return `port ${port} (${variable}) is ${reason}${reason === 'already in use' ? by : ''}`;
}
