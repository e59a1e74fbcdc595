/**
 * `node tether.ts <command> [args...]`: runs a program that cannot watch its parent (DynamoDB
 * Local, a JVM) on a tether. Started with an IPC channel, it ends the program when that
 * channel closes, which the kernel does however the parent died, SIGKILL included (Node
 * cannot ask for Linux's PR_SET_PDEATHSIG). SIGTERM and SIGINT are passed on; the program's
 * exit code is this process's.
 */
import { spawn } from 'node:child_process';

/** Less than the 5 s after which whoever stops the tether kills it (and its group). */
const KILL_AFTER_MS = 4_000;

const [command, ...args] = process.argv.slice(2);
if (!command) {
  console.error('usage: tether.ts <command> [args...]');
  process.exit(2);
}

const child = spawn(command, args, { stdio: 'inherit' });
let ending = false;
const end = (): void => {
  if (ending) return;
  ending = true;
  child.kill('SIGTERM');
  setTimeout(() => child.kill('SIGKILL'), KILL_AFTER_MS).unref();
};
process.on('SIGTERM', end);
process.on('SIGINT', end);
if (process.connected) process.once('disconnect', end);
else end(); // started without a channel: there is nothing to be tethered to
child.once('error', (error) => {
  console.error(`tether: cannot run ${command}: ${error.message}`);
  process.exit(127);
});
child.once('exit', (code, signal) => process.exit(code ?? (signal ? 128 : 1)));
