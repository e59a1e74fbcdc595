/**
 * `npm run bench:profile`: a CPU profile of the cached discover. The discovery service
 * (`apps/discovery/src/main.ts`, as the stack runs it) is started on the local stack under
 * `node --cpu-prof`, loaded by autocannon with the same triple again and again
 * (BERTH_CACHE_TTL=1h), then stopped so that Node writes the profile; the frames with the most
 * self time are printed. The `.cpuprofile` file is kept (under BENCH_PROFILE_DIR, or the
 * system's temporary directory) for Chrome DevTools or speedscope.
 */
import autocannon from 'autocannon';
import { mintToken } from '@berth/platform';
import { freePort } from '@berth/testing';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  fmt,
  machine,
  round,
  runMain,
  say,
  startBenchStack,
  startChildServer,
  stopBenchStack,
  textTable,
  UNREACHABLE_RATE_LIMIT,
  type MachineInfo,
} from './common.ts';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const DISCOVERY_MAIN = resolve(ROOT, 'apps/discovery/src/main.ts');
const KEY = { clientId: 'bench', projectId: 'website', userId: 'alice' };

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileFrame {
  frame: string;
  selfPercent: number;
}

export interface ProfileResult {
  benchmark: 'profile';
  date: string;
  machine: MachineInfo;
  requestsPerSecond: number;
  seconds: number;
  profileFile: string;
  /** Self time by frame, highest first, in percent of all samples. */
  top: ProfileFrame[];
  /** Self time by package (node_modules/<name>, node internals, berth's own code). */
  byOwner: ProfileFrame[];
}

function ownerOf(url: string): string {
  if (url === '') return '(native / GC / idle)';
  const module = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (module?.[1]) return module[1];
  if (url.startsWith('node:')) return 'node internals';
  if (/\/(apps|libs)\//.test(url)) return 'berth';
  return url;
}

function frameName(node: ProfileNode): string {
  const { functionName, url, lineNumber } = node.callFrame;
  const where = url
    ? `${url.replace(/^file:\/\/.*?\/(node_modules|apps|libs)\//, '$1/')}:${lineNumber + 1}`
    : '';
  return `${functionName || '(anonymous)'}${where ? ` ${where}` : ''}`;
}

/**
 * Self time per frame and per owner, from the samples of a V8 CPU profile taken within
 * `window` (microseconds before the profile's end), so the start-up and shutdown of the
 * process do not count.
 */
export function summarizeProfile(
  profile: CpuProfile,
  window: { fromEndMicros: number; toEndMicros: number },
  limit = 15,
): Pick<ProfileResult, 'top' | 'byOwner'> {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const selfByFrame = new Map<string, number>();
  const selfByOwner = new Map<string, number>();
  let total = 0;
  let at = profile.startTime;
  const from = profile.endTime - window.fromEndMicros;
  const to = profile.endTime - window.toEndMicros;
  profile.samples.forEach((id, index) => {
    const node = byId.get(id);
    const delta = profile.timeDeltas[index] ?? 0;
    at += delta;
    if (at < from || at > to) return;
    if (!node || node.callFrame.functionName === '(idle)') return;
    total += delta;
    const name = frameName(node);
    selfByFrame.set(name, (selfByFrame.get(name) ?? 0) + delta);
    const owner = ownerOf(node.callFrame.url);
    selfByOwner.set(owner, (selfByOwner.get(owner) ?? 0) + delta);
  });
  const ranked = (map: Map<string, number>, count: number): ProfileFrame[] =>
    [...map.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, count)
      .map(([frame, micros]) => ({ frame, selfPercent: round((micros / total) * 100, 1) }));
  return { top: ranked(selfByFrame, limit), byOwner: ranked(selfByOwner, 10) };
}

export async function runProfile(
  options: { seconds?: number; connections?: number; progress?: (line: string) => void } = {},
): Promise<ProfileResult> {
  const seconds = options.seconds ?? Number(process.env.BENCH_PROFILE_SECONDS ?? '10');
  const connections = options.connections ?? 20;
  const progress = options.progress ?? (() => {});
  const before = machine();
  progress('profile: starting the local stack');
  const stack = await startBenchStack({
    BERTH_IDLE_TIMEOUT: '1h',
    BERTH_LOG_LEVEL: 'warn',
    BERTH_RATE_LIMIT: UNREACHABLE_RATE_LIMIT,
  });
  try {
    const secret = readFileSync(join(stack.dataDir, 'auth-secret'), 'utf8').trim();
    const token = mintToken(secret, { client: KEY.clientId, sub: KEY.userId, role: 'user' });
    const request = {
      method: 'POST' as const,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify(KEY),
    };
    const created = await fetch(`${stack.url}/v1/containers/discover?wait=60`, request);
    if (!created.ok) throw new Error(`the container did not start: HTTP ${created.status}`);
    await created.body?.cancel();

    const profileDir = mkdtempSync(
      join(process.env.BENCH_PROFILE_DIR ?? tmpdir(), 'berth-profile-'),
    );
    const port = await freePort();
    progress(`  discovery under --cpu-prof, ${seconds} s at ${connections} connections`);
    const server = await startChildServer({
      entry: DISCOVERY_MAIN,
      env: {
        ...stack.env,
        NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --cpu-prof --cpu-prof-dir=${profileDir}`,
        BERTH_HTTP_PORT: String(port),
        BERTH_AUTH_SECRET: secret,
        BERTH_CACHE_TTL: '1h',
        BERTH_LOG_LEVEL: 'warn',
        BERTH_RATE_LIMIT: UNREACHABLE_RATE_LIMIT,
      },
      port,
      logFile: join(stack.dataDir, 'logs', 'bench-profile.log'),
      readyPath: '/readyz',
    });
    const url = `${server.url}/v1/containers/discover`;
    let requestsPerSecond: number;
    let loadStart = 0;
    let loadEnd = 0;
    try {
      await autocannon({ url, connections, duration: 2, ...request });
      loadStart = performance.now();
      const result = await autocannon({ url, connections, duration: seconds, ...request });
      loadEnd = performance.now();
      requestsPerSecond = round(result.requests.average, 1);
    } finally {
      await server.stop();
    }
    // The profile ends when the process exits, a moment before `stop` sees it: the load's
    // window, counted back from the profile's end, is at most that moment late.
    const exited = performance.now();
    const file = readdirSync(profileDir)
      .filter((name) => name.endsWith('.cpuprofile'))
      .sort()
      .at(-1);
    if (!file) throw new Error(`no .cpuprofile was written to ${profileDir}`);
    const profileFile = join(profileDir, file);
    const profile = JSON.parse(readFileSync(profileFile, 'utf8')) as CpuProfile;
    return {
      benchmark: 'profile',
      date: new Date().toISOString(),
      machine: before,
      requestsPerSecond,
      seconds,
      profileFile,
      ...summarizeProfile(profile, {
        fromEndMicros: (exited - loadStart) * 1000,
        toEndMicros: (exited - loadEnd) * 1000,
      }),
    };
  } finally {
    await stopBenchStack(stack);
  }
}

export function renderProfile(result: ProfileResult): string {
  return [
    `cached discover under --cpu-prof: ${fmt(result.requestsPerSecond, 0)} req/s over ${result.seconds} s (profiling slows it); ${result.profileFile}`,
    textTable(
      ['self time by owner', '% of samples'],
      result.byOwner.map((frame) => [frame.frame, frame.selfPercent]),
    ),
    '',
    textTable(
      ['top frames by self time', '% of samples'],
      result.top.map((frame) => [frame.frame, frame.selfPercent]),
    ),
    `load average ${result.machine.loadAverage.map((value) => fmt(value, 2)).join(' ')} on ${result.machine.cpuCount} CPUs`,
  ].join('\n');
}

if (import.meta.main) {
  await runMain('bench:profile', () => runProfile({ progress: say }), renderProfile);
}
