#!/usr/bin/env node
/**
 * `berth`: the command line of berth. Talks to discovery over HTTP, to the lifecycle queue
 * and topic over SQS/SNS. Exit codes: 0 ok, 1 failure, 2 bad usage or input, 3 not found,
 * 4 not authenticated or not allowed, 5 berth or a dependency unavailable, 6 conflict.
 */
import { Command, CommanderError } from 'commander';
import { runCli } from './cli.ts';

const program = new Command();
try {
  await runCli(program, process.argv);
} catch (error) {
  if (error instanceof CommanderError) process.exit(error.exitCode === 0 ? 0 : 2);
  throw error;
}
