/**
 * The CDK app synthesized as `cdk synth` does for a deployment, into a cloud assembly that the
 * rehearsal, the IAM proof and the metrics proof read. One way to synthesize, so that what they
 * prove is the same assembly.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const repoRoot = fileURLToPath(new URL('../../', import.meta.url));

export interface SynthesizeOptions {
  /** Given to the app as `-c berth=<json>` (infra/src/config.ts reads it). */
  readonly context?: object;
  /** Variables set for the synth on top of the filtered environment (e.g. CDK_DEFAULT_REGION). */
  readonly env?: Readonly<Record<string, string>>;
}

export async function synthesizeApp(
  outdir: string,
  options: SynthesizeOptions = {},
): Promise<void> {
  // The contract's variables of whoever runs this must not change what is synthesized.
  const inherited = Object.fromEntries(
    Object.entries(process.env).filter(
      ([name]) => !name.startsWith('BERTH_') && name !== 'AWS_REGION',
    ),
  );
  const args = [join(repoRoot, 'node_modules/aws-cdk/bin/cdk'), 'synth', '--quiet', '-o', outdir];
  if (options.context) args.push('-c', `berth=${JSON.stringify(options.context)}`);
  await run(process.execPath, args, {
    cwd: join(repoRoot, 'infra'),
    env: {
      ...inherited,
      // cdk runs the app with the `node` on PATH: the project's Node 24, which runs TypeScript.
      PATH: `${join(repoRoot, 'node_modules/.bin')}:${process.env['PATH'] ?? ''}`,
      ...options.env,
    },
    maxBuffer: 64 * 1024 * 1024,
  });
}
