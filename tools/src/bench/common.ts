/**
 * What every benchmark shares: latency summaries, ratios, the machine description, text
 * tables, child processes for servers, and the command-line entry (`--json <file>`).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import {
  closeSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { startStack, type RunningStack } from '../stack/harness.ts';

/**
 * The most BERTH_RATE_LIMIT allows (requests per minute per client and user): benchmark load
 * comes from one user, so the limiter runs on every request but never refuses one.
 */
export const UNREACHABLE_RATE_LIMIT = '1000000';

export interface LatencySummary {
  count: number;
  p50: number;
  p99: number;
  mean: number;
  min: number;
  max: number;
}

/** Nearest-rank percentile of an ascending array; NaN when empty. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1] ?? Number.NaN;
}

export function summarize(samples: readonly number[]): LatencySummary {
  const sorted = [...samples].sort((a, b) => a - b);
  const sum = sorted.reduce((total, value) => total + value, 0);
  return {
    count: sorted.length,
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    mean: sorted.length === 0 ? Number.NaN : sum / sorted.length,
    min: sorted[0] ?? Number.NaN,
    max: sorted[sorted.length - 1] ?? Number.NaN,
  };
}

export function ratio(value: number, baseline: number): number {
  return baseline === 0 || !Number.isFinite(baseline) ? Number.NaN : value / baseline;
}

export function round(value: number, digits = 2): number {
  if (!Number.isFinite(value)) return value;
  const factor = 10 ** digits;
  return Math.round(value * factor) / factor;
}

export function fmt(value: number, digits = 1): string {
  if (!Number.isFinite(value)) return 'n/a';
  return value.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: 0 });
}

export function fmtRatio(value: number): string {
  return Number.isFinite(value) ? `${value.toFixed(2)}x` : 'n/a';
}

export function fmtPercent(value: number): string {
  return Number.isFinite(value) ? `${(value * 100).toFixed(0)} %` : 'n/a';
}

export interface MachineInfo {
  cpuModel: string;
  cpuCount: number;
  cpuMHz: number;
  memoryGiB: number;
  node: string;
  platform: string;
  /** 1-, 5- and 15-minute load averages when the figure was taken. */
  loadAverage: [number, number, number];
}

export function machine(): MachineInfo {
  const list = cpus();
  const [one = 0, five = 0, fifteen = 0] = loadavg();
  return {
    cpuModel: list[0]?.model.trim() ?? 'unknown',
    cpuCount: list.length,
    cpuMHz: list[0]?.speed ?? 0,
    memoryGiB: round(totalmem() / 2 ** 30, 1),
    node: process.version,
    platform: `${process.platform} ${process.arch}`,
    loadAverage: [round(one), round(five), round(fifteen)],
  };
}

/** A plain text table with columns padded to their widest cell; numbers align right. */
export function textTable(
  headers: readonly string[],
  rows: readonly (readonly (string | number)[])[],
): string {
  const cells = rows.map((row) => row.map((cell) => (typeof cell === 'number' ? fmt(cell) : cell)));
  const widths = headers.map((header, column) =>
    Math.max(header.length, ...cells.map((row) => (row[column] ?? '').length)),
  );
  const numeric = headers.map((_, column) => rows.every((row) => typeof row[column] === 'number'));
  const line = (row: readonly string[]) =>
    row
      .map((cell, column) =>
        numeric[column] ? cell.padStart(widths[column] ?? 0) : cell.padEnd(widths[column] ?? 0),
      )
      .join('  ')
      .trimEnd();
  return [
    line(headers),
    widths.map((width) => '-'.repeat(width)).join('  '),
    ...cells.map(line),
  ].join('\n');
}

export function say(line = ''): void {
  process.stdout.write(`${line}\n`);
}

/** Runs `task` over `items` with at most `limit` in flight. */
export async function forEachLimit<T>(
  items: readonly T[],
  limit: number,
  task: (item: T, index: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const index = next;
      next += 1;
      await task(items[index] as T, index);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/** Polls `check` until it returns a value, or throws after `timeoutMs`. */
export async function pollUntil<T>(
  what: string,
  check: () => Promise<T | undefined>,
  timeoutMs: number,
  everyMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (error) {
      last = error;
    }
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
  const cause = last instanceof Error ? `: ${last.message}` : '';
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${cause}`);
}

export interface ChildServer {
  url: string;
  process: ChildProcess;
  stop(): Promise<void>;
}

/**
 * Starts a Node entry point as a server process of its own (so it never shares an event loop
 * with the load generator), logging to `logFile`, and waits until `readyPath` answers 200.
 * The IPC channel makes berth services exit if this process dies.
 */
export async function startChildServer(options: {
  entry: string;
  env: Record<string, string>;
  port: number;
  logFile: string;
  readyPath: string;
  timeoutMs?: number;
}): Promise<ChildServer> {
  mkdirSync(dirname(options.logFile), { recursive: true });
  const log = openSync(options.logFile, 'a');
  const child = spawn(process.execPath, [options.entry], {
    env: { ...process.env, ...options.env },
    stdio: ['ignore', log, log, 'ipc'],
  });
  closeSync(log);
  const url = `http://127.0.0.1:${options.port}`;
  const stop = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  };
  try {
    await pollUntil(
      `${options.entry} at ${url}${options.readyPath}`,
      async () => {
        if (child.exitCode !== null)
          throw new Error(`exited with code ${child.exitCode} (see ${options.logFile})`);
        const response = await fetch(`${url}${options.readyPath}`);
        await response.body?.cancel();
        return response.ok ? true : undefined;
      },
      options.timeoutMs ?? 60_000,
      200,
    );
  } catch (error) {
    await stop();
    throw error;
  }
  return { url, process: child, stop };
}

/**
 * The shared entry of every benchmark script: runs it, prints its table and its JSON summary,
 * and with `--json <file>` also writes the summary there. Exits non-zero on failure.
 */
export async function runMain<T>(
  name: string,
  run: () => Promise<T>,
  render: (result: T) => string,
): Promise<void> {
  const jsonFlag = process.argv.indexOf('--json');
  const jsonFile = jsonFlag >= 0 ? process.argv[jsonFlag + 1] : undefined;
  try {
    const result = await run();
    say('');
    say(render(result));
    say('');
    say(`${name}: JSON summary`);
    say(JSON.stringify(result, null, 2));
    if (jsonFile) writeFileSync(jsonFile, `${JSON.stringify(result, null, 2)}\n`);
    process.exit(0);
  } catch (error) {
    console.error(
      `${name} failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`,
    );
    process.exit(1);
  }
}

export interface ProbeFigures {
  opsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  meanMs: number;
  count: number;
  failures: number;
}

/**
 * A closed loop: `concurrency` callers each run `operation` again as soon as it returns, for
 * `seconds`. Latency is measured around each call with the high-resolution clock.
 */
export async function closedLoop(
  seconds: number,
  concurrency: number,
  operation: () => Promise<unknown>,
): Promise<ProbeFigures> {
  const latencies: number[] = [];
  let failures = 0;
  const started = performance.now();
  const until = started + seconds * 1000;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < until) {
        const begin = performance.now();
        try {
          await operation();
          latencies.push(performance.now() - begin);
        } catch {
          failures += 1;
        }
      }
    }),
  );
  const elapsed = (performance.now() - started) / 1000;
  const summary = summarize(latencies);
  return {
    opsPerSecond: round(latencies.length / elapsed, 1),
    p50Ms: round(summary.p50),
    p99Ms: round(summary.p99),
    meanMs: round(summary.mean),
    count: latencies.length,
    failures,
  };
}

/** Points this process's AWS SDK clients at a local stack's engines (AWS_* variables only). */
export function useStackAws(env: Record<string, string>): void {
  for (const [name, value] of Object.entries(env))
    if (name.startsWith('AWS_')) process.env[name] = value;
}

/** Linux's USER_HZ: /proc reports CPU time in these ticks. */
const CLOCK_TICKS_PER_SECOND = 100;

/**
 * CPU seconds (user + system) a process has used so far, from /proc; undefined where there
 * is no /proc. On a shared machine this is steadier than throughput: it does not depend on
 * how often the process got a CPU, only on how much work each request cost.
 */
export function processCpuSeconds(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name may hold spaces; the fields after it are fixed.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const user = Number(fields[11]);
    const system = Number(fields[12]);
    if (!Number.isFinite(user) || !Number.isFinite(system)) return undefined;
    return (user + system) / CLOCK_TICKS_PER_SECOND;
  } catch {
    return undefined;
  }
}

/** Processes whose command line or environment names `dataDir` (unique per benchmark stack). */
function processesUsing(dataDir: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    try {
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      const environ = readFileSync(`/proc/${pid}/environ`, 'utf8');
      if (cmdline.includes(dataDir) || environ.includes(dataDir)) pids.push(pid);
    } catch {
      // Gone meanwhile, or not ours to read.
    }
  }
  return pids;
}

/**
 * Ends whatever is left of a benchmark's stack: the stack's start can time out on a loaded
 * machine without stopping what it started, and a stopped stack has been seen to leave an
 * engine behind. Only processes naming this stack's own data directory are signalled.
 */
async function endLeftovers(dataDir: string): Promise<void> {
  if (!existsProc()) return;
  const signal = (pids: number[], name: NodeJS.Signals) => {
    for (const pid of pids) {
      try {
        process.kill(pid, name);
      } catch {
        // Already gone.
      }
    }
  };
  signal(processesUsing(dataDir), 'SIGTERM');
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline && processesUsing(dataDir).length > 0) await delay(250);
  signal(processesUsing(dataDir), 'SIGKILL');
}

function existsProc(): boolean {
  try {
    readdirSync('/proc/self');
    return true;
  } catch {
    return false;
  }
}

/**
 * The local stack on free ports and a data directory of its own, with a start timeout for
 * a loaded machine; if it does not come up, nothing it started is left running.
 */
export async function startBenchStack(
  overrides: Record<string, string>,
  attempts = 3,
): Promise<RunningStack> {
  for (let attempt = 1; ; attempt += 1) {
    const dataDir = mkdtempSync(join(tmpdir(), 'berth-bench-'));
    try {
      return await startStack({ ...overrides, BERTH_DATA_DIR: dataDir }, 300_000);
    } catch (error) {
      await endLeftovers(dataDir);
      rmSync(dataDir, { recursive: true, force: true });
      // DynamoDB Local's JVM can miss its 60 s start deadline on a loaded machine.
      if (attempt >= attempts) throw error;
      const lines = error instanceof Error ? error.message.split('\n') : [String(error)];
      const reason = lines.find((line) => line.includes('could not start')) ?? lines[0] ?? '';
      console.error(`the local stack did not start (${reason.trim()}); trying again`);
    }
  }
}

export async function stopBenchStack(stack: RunningStack): Promise<void> {
  try {
    await stack.stop();
  } finally {
    await endLeftovers(stack.dataDir);
    rmSync(stack.dataDir, { recursive: true, force: true });
  }
}
