/**
 * `node tools/src/iam/main.ts <assemblyDir> <call-log.jsonl>...`: proves the recorded AWS
 * calls against the synthesized policies; exits 1 when a call is denied or unmapped, 2 on
 * bad input.
 */
import { AssemblyError } from './assembly.ts';
import { CallLogError, proveCalls } from './prove.ts';
import { formatIamReport } from './report.ts';

const [assemblyDir, ...callLogFiles] = process.argv.slice(2);
if (assemblyDir === undefined || callLogFiles.length === 0) {
  console.error('usage: node tools/src/iam/main.ts <assemblyDir> <call-log.jsonl>...');
  process.exit(2);
}
try {
  const report = await proveCalls({ assemblyDir, callLogFiles });
  // Written out before exiting: a pipe's writes are asynchronous.
  await new Promise<void>((done) =>
    process.stdout.write(`${formatIamReport(report)}\n`, () => done()),
  );
  process.exit(report.ok ? 0 : 1);
} catch (error) {
  if (error instanceof AssemblyError || error instanceof CallLogError) {
    console.error(`iam proof: ${error.message}`);
    process.exit(2);
  }
  throw error;
}
