/**
 * `npm run bench`: every benchmark in sequence (discovery, profile, ecs-calls, sessions, idle), each table
 * printed as it completes, then docs/benchmarks.md rewritten from the results. A benchmark
 * that fails is reported as failed in the document; the others still run. `--only a,b`
 * runs a subset and leaves the document alone; `--json <file>` also writes the combined
 * summary; `--render <file>` rewrites the document from such a summary without running.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { format, resolveConfig } from 'prettier';
import { fileURLToPath } from 'node:url';
import { machine, say } from './common.ts';
import { renderDiscovery, runDiscoveryBenchmark } from './discovery.ts';
import { renderEcsCalls, runEcsCallsBenchmark } from './ecs-calls.ts';
import { renderIdle, runIdleBenchmark } from './idle.ts';
import { renderProfile, runProfile } from './profile.ts';
import { renderMarkdown, type BenchReport, type Outcome } from './report.ts';
import { renderSessions, runSessionsBenchmark } from './sessions.ts';

const DOC = fileURLToPath(new URL('../../../docs/benchmarks.md', import.meta.url));

/** Sections other benchmarks own (run on their own): kept as they are when the rest is rewritten. */
const KEPT_SECTIONS = ['## Warm pool (`npm run bench:pool`'];

function keptSections(): string {
  let existing: string;
  try {
    existing = readFileSync(DOC, 'utf8');
  } catch {
    return '';
  }
  const starts = KEPT_SECTIONS.map((heading) => existing.indexOf(heading)).filter((i) => i >= 0);
  return starts.length === 0 ? '' : `\n${existing.slice(Math.min(...starts))}`;
}

/** Written as the repository's Prettier would write it, so `npm run format:check` passes. */
async function writeDoc(report: BenchReport): Promise<void> {
  const config = (await resolveConfig(DOC)) ?? {};
  const markdown = `${renderMarkdown(report)}${keptSections()}`;
  writeFileSync(DOC, await format(markdown, { ...config, parser: 'markdown' }));
}

function option(name: string): string | undefined {
  const index = process.argv.indexOf(name);
  return index >= 0 ? process.argv[index + 1] : undefined;
}

async function attempt<T>(
  name: string,
  run: () => Promise<T>,
  render: (result: T) => string,
): Promise<Outcome<T>> {
  const started = performance.now();
  const seconds = () => Math.round((performance.now() - started) / 100) / 10;
  try {
    const result = await run();
    say('');
    say(render(result));
    say('');
    say(`${name}: done in ${seconds()} s`);
    return { ok: true, result, seconds: seconds() };
  } catch (error) {
    const message = error instanceof Error ? (error.stack ?? error.message) : String(error);
    console.error(`${name} failed: ${message}`);
    return { ok: false, error: message, seconds: seconds() };
  }
}

const rendering = option('--render');
if (rendering) {
  await writeDoc(JSON.parse(readFileSync(rendering, 'utf8')) as BenchReport);
  say(`wrote ${DOC} from ${rendering}`);
  process.exit(0);
}

const only = option('--only')
  ?.split(',')
  .map((name) => name.trim());
const wanted = (name: string) => only === undefined || only.includes(name);

const report: BenchReport = {
  startedAt: new Date().toISOString(),
  finishedAt: '',
  machine: machine(),
};
if (wanted('discovery')) {
  report.discovery = await attempt(
    'bench:discovery',
    () => runDiscoveryBenchmark({ progress: say }),
    renderDiscovery,
  );
}
if (wanted('profile')) {
  report.profile = await attempt(
    'bench:profile',
    () => runProfile({ progress: say }),
    renderProfile,
  );
}
if (wanted('ecs-calls')) {
  report.ecsCalls = await attempt(
    'bench:ecs-calls',
    () => runEcsCallsBenchmark({ progress: say }),
    renderEcsCalls,
  );
}
if (wanted('sessions')) {
  report.sessions = await attempt(
    'bench:sessions',
    () => runSessionsBenchmark({ progress: say }),
    renderSessions,
  );
}
if (wanted('idle')) {
  report.idle = await attempt('bench:idle', () => runIdleBenchmark({ progress: say }), renderIdle);
}
report.finishedAt = new Date().toISOString();

if (only === undefined) {
  await writeDoc(report);
  say(`wrote ${DOC}`);
} else {
  say(`a partial run (--only ${only.join(',')}): ${DOC} left as it was`);
}
const jsonFile = option('--json');
if (jsonFile) writeFileSync(jsonFile, `${JSON.stringify(report, null, 2)}\n`);
say('bench: JSON summary');
say(JSON.stringify(report, null, 2));
const failures = [
  report.discovery,
  report.profile,
  report.ecsCalls,
  report.sessions,
  report.idle,
].filter((outcome) => outcome && !outcome.ok).length;
process.exit(failures > 0 ? 1 : 0);
