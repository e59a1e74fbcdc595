/**
 * `npm run soak`: berth on the local stack under random load, service crashes and faults
 * between the services and AWS, then a check of every promise it keeps. Exits 0 when no
 * violation was found, 1 when one was, 2 when the run itself could not be made.
 */
import { InvalidArgumentError } from '@berth/domain';
import { runSoak } from './driver.ts';
import { USAGE, parseSoakOptions } from './options.ts';
import { formatReport } from './report.ts';

const write = (line: string): void => void process.stdout.write(`${line}\n`);

async function main(): Promise<number> {
  let options;
  try {
    options = parseSoakOptions(process.argv.slice(2), process.env);
  } catch (error) {
    if (error instanceof InvalidArgumentError || (error instanceof Error && 'code' in error)) {
      console.error(`soak: ${error.message}\n\n${USAGE}`);
      return 2;
    }
    throw error;
  }
  if (options === 'help') {
    write(USAGE);
    return 0;
  }
  const say = options.verbose ? write : () => undefined;
  const report = await runSoak(options, say);
  for (const line of formatReport(report)) write(line);
  if (options.json) write(JSON.stringify(report));
  return report.ok ? 0 : 1;
}

const code = await main().catch((error: unknown) => {
  console.error(`soak: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
  return 2;
});
// Sockets of the SDK clients may linger; the run is over.
process.exit(code);
