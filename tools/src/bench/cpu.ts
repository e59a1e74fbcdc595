/**
 * CPU time per operation, by process of the local stack (Linux `/proc`): where a command's
 * cost goes when every engine and service shares the same cores. A phase's CPU time is the
 * difference of two snapshots of the stack's process tree (each process's own time plus that
 * of its children that have ended, such as an agent's `git`), named by what the process is.
 * On a system without `/proc` the snapshots are empty and nothing is printed.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';

export interface CpuSnapshot {
  /** CPU milliseconds by process id, with the name the process is reported under. */
  processes: Map<number, { name: string; cpuMs: number }>;
}

/** CPU milliseconds per operation by process name, largest first; `total` is their sum. */
export interface CpuPerOperation {
  operations: number;
  total: number;
  byProcess: Record<string, number>;
}

/**
 * `/proc` counts CPU time in USER_HZ ticks, which Linux fixes at 100 for user space whatever
 * the kernel's own tick rate (Node cannot call sysconf(_SC_CLK_TCK) to ask).
 */
const TICKS_PER_SECOND = 100;

interface ProcStat {
  pid: number;
  ppid: number;
  cpuTicks: number;
}

function readStat(pid: number): ProcStat | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name sits in parentheses and may hold spaces: fields start after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const number = (index: number) => Number(fields[index] ?? 0);
    return {
      pid,
      ppid: number(1),
      // utime, stime, cutime, cstime (proc(5) fields 14-17).
      cpuTicks: number(11) + number(12) + number(13) + number(14),
    };
  } catch {
    return undefined;
  }
}

/** What a process of the stack is, from its command line. */
export function processName(commandLine: string): string {
  const app = /apps\/([a-z-]+)\/src\/main\.ts/.exec(commandLine);
  if (app?.[1]) return app[1];
  if (commandLine.includes('DynamoDBLocal.jar')) {
    return commandLine.includes('tether.ts') ? 'dynamodb-local tether' : 'dynamodb-local';
  }
  if (commandLine.includes('fauxqs')) return 'fauxqs';
  if (commandLine.includes('stack/main.ts')) return 'stack main';
  const first = commandLine.split(' ')[0] ?? '';
  return first.split('/').pop() || 'other';
}

function commandLineOf(pid: number): string {
  try {
    const commandLine = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ').trim();
    // A process that has ended but is not yet waited for keeps only its short name.
    return commandLine || readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '';
  }
}

/** The CPU time so far of `rootPid` and every process below it. */
export function cpuSnapshot(rootPid: number | undefined): CpuSnapshot {
  const processes = new Map<number, { name: string; cpuMs: number }>();
  if (rootPid === undefined || !existsSync('/proc/self/stat')) return { processes };
  const stats = readdirSync('/proc')
    .filter((entry) => /^\d+$/.test(entry))
    .map((entry) => readStat(Number(entry)))
    .filter((stat): stat is ProcStat => stat !== undefined);
  const children = new Map<number, ProcStat[]>();
  for (const stat of stats) {
    const list = children.get(stat.ppid) ?? [];
    list.push(stat);
    children.set(stat.ppid, list);
  }
  const msPerTick = 1000 / TICKS_PER_SECOND;
  const root = stats.find((stat) => stat.pid === rootPid);
  const pending = root ? [root] : [];
  while (pending.length > 0) {
    const stat = pending.pop() as ProcStat;
    processes.set(stat.pid, {
      name: processName(commandLineOf(stat.pid)),
      cpuMs: stat.cpuTicks * msPerTick,
    });
    pending.push(...(children.get(stat.pid) ?? []));
  }
  return { processes };
}

/**
 * CPU milliseconds per operation between two snapshots, summed by process name. A process
 * that started in between counts from zero; one that ended in between is lost (it shows in
 * its parent's children time only once waited for).
 */
export function cpuPerOperation(
  before: CpuSnapshot,
  after: CpuSnapshot,
  operations: number,
): CpuPerOperation {
  const byName = new Map<string, number>();
  for (const [pid, { name, cpuMs }] of after.processes) {
    const spent = cpuMs - (before.processes.get(pid)?.cpuMs ?? 0);
    byName.set(name, (byName.get(name) ?? 0) + spent);
  }
  const per = (ms: number) => (operations > 0 ? Math.round((ms / operations) * 10) / 10 : NaN);
  // Processes that spent nothing worth a tenth of a millisecond per operation are left out.
  const sorted = [...byName].filter(([, ms]) => per(ms) > 0).sort(([, a], [, b]) => b - a);
  return {
    operations,
    total: per(sorted.reduce((sum, [, ms]) => sum + ms, 0)),
    byProcess: Object.fromEntries(sorted.map(([name, ms]) => [name, per(ms)])),
  };
}

/** `total 104 ms: dynamodb-local 23, workspace-agent 25, ...` */
export function describeCpu(cpu: CpuPerOperation | undefined): string {
  if (!cpu || cpu.operations === 0 || Object.keys(cpu.byProcess).length === 0) {
    return 'not measured (no /proc)';
  }
  const parts = Object.entries(cpu.byProcess).map(([name, ms]) => `${name} ${ms}`);
  return `total ${cpu.total} ms: ${parts.join(', ')}`;
}
