import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { LOCAL_STACK_FILE, parseLocalStack, type LocalStack } from '@berth/domain';

export type LocalStackLookup =
  { found: true; path: string; stack: LocalStack } | { found: false; path: string; why: string };

export function localStackPath(dataDir: string): string {
  return join(dataDir, LOCAL_STACK_FILE);
}

/** Written whole or not at all: a client never reads half a file. */
export function writeLocalStack(dataDir: string, stack: LocalStack): string {
  const path = localStackPath(dataDir);
  const partial = `${path}.${process.pid}.tmp`;
  writeFileSync(partial, `${JSON.stringify(stack, null, 2)}\n`, { mode: 0o644 });
  renameSync(partial, path);
  return path;
}

/** Removes the file if it is still the one this process wrote. */
export function removeLocalStack(dataDir: string, pid = process.pid): void {
  const lookup = readLocalStack(dataDir, () => true);
  if (lookup.found && lookup.stack.pid === pid) rmSync(lookup.path, { force: true });
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: the process exists but belongs to someone else.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * The running local stack of a data directory, if there is one: a file left behind by a
 * stack that died without cleaning up (its process is gone) does not count.
 */
export function readLocalStack(dataDir: string, alive = isAlive): LocalStackLookup {
  const path = localStackPath(dataDir);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return { found: false, path, why: `no ${path}` };
  }
  let stack: LocalStack;
  try {
    stack = parseLocalStack(text);
  } catch (error) {
    return { found: false, path, why: `${path} is unusable: ${(error as Error).message}` };
  }
  if (!alive(stack.pid)) {
    return { found: false, path, why: `${path} is stale: its stack (pid ${stack.pid}) is gone` };
  }
  return { found: true, path, stack };
}
