/**
 * The judgements made on what a rehearsal recorded, each owned by its own module: every AWS
 * call allowed by the caller's synthesized policies (tools/src/iam/prove.ts, issue 10) and
 * every dashboard and alarm metric emitted (tools/src/metrics-proof/index.ts, issue 11, loaded
 * only once it is in the tree: until then it is reported as skipped, never as passed).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { proveCalls } from '../iam/prove.ts';
import { formatIamReport } from '../iam/report.ts';

export interface CheckInput {
  /** `<service>.jsonl` (recorded AWS calls) and `<service>.log` (stdout) of each process. */
  serviceDir: string;
  assemblyDir: string;
  services: string[];
  say: (line: string) => void;
}

type ProveMetrics = (input: { assemblyDir: string; logFiles: string[] }) => Promise<unknown>;

async function optionalExport<T>(relativePath: string, name: string): Promise<T | undefined> {
  const url = new URL(relativePath, import.meta.url);
  if (!existsSync(fileURLToPath(url))) return undefined;
  const module = (await import(url.href)) as Record<string, unknown>;
  const value = module[name];
  if (typeof value !== 'function') throw new Error(`${relativePath} does not export ${name}`);
  return value as T;
}

const describe = (value: unknown): string =>
  typeof value === 'string' ? value : JSON.stringify(value);

/** Failures found; an empty list means every check that exists passed. */
export async function runChecks(input: CheckInput): Promise<string[]> {
  const failures: string[] = [];
  const files = (extension: string): string[] =>
    input.services
      .map((service) => join(input.serviceDir, `${service}${extension}`))
      .filter((file) => existsSync(file));

  const report = await proveCalls({
    assemblyDir: input.assemblyDir,
    callLogFiles: files('.jsonl'),
  });
  input.say(formatIamReport(report));
  for (const denied of report.denied)
    failures.push(
      `IAM denied: ${denied.service} ${denied.action} on ${denied.resource}${denied.missingStatement ? ` (missing: ${describe(denied.missingStatement)})` : ''}`,
    );

  const proveMetrics = await optionalExport<ProveMetrics>(
    '../metrics-proof/index.ts',
    'proveDashboardMetrics',
  );
  if (proveMetrics === undefined) {
    input.say('rehearsal: metrics check skipped (tools/src/metrics-proof/ is not there yet)');
  } else {
    try {
      await proveMetrics({ assemblyDir: input.assemblyDir, logFiles: files('.log') });
      input.say('rehearsal: every dashboard and alarm metric was emitted');
    } catch (error) {
      // Reported, not fatal: the rehearsal's e2e run stops no container for idleness and may
      // end before a gauge tick, so lifetime/idle and gauge metrics can be absent here. The
      // proof that fails is tools/tests/metrics-proof.test.ts, which runs a whole lifetime.
      input.say(
        `rehearsal: metrics not seen in this run (proven by tools/tests/metrics-proof.test.ts): ${error instanceof Error ? error.message : String(error)}`,
      );
    }
  }
  return failures;
}
