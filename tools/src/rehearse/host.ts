/**
 * How a synthesized container becomes a process of this machine. The images copy the
 * repository's layout below their WORKDIR and run `node <entry>` from it, so the image's
 * WORKDIR is the repository root here and `node` is this Node.js (24, as the images').
 * Everything else the task runs with comes from the task definition; what this machine adds
 * is listed in `standIns` and nothing more.
 */
import { existsSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { isAbsolute, join, relative } from 'node:path';
import { UnmappableTaskDefinitionError, type ContainerPlan } from './assembly.ts';

export interface HostCommand {
  command: string;
  args: string[];
  cwd: string;
}

function inRepository(plan: ContainerPlan, repoRoot: string, path: string, what: string): string {
  const root = plan.imageRoot.replace(/\/+$/, '');
  if (path !== root && !path.startsWith(`${root}/`)) {
    throw new UnmappableTaskDefinitionError(
      plan.constructPath,
      `its ${what} ${path} is outside the image's ${root}, where the repository is copied`,
    );
  }
  return join(repoRoot, relative(root, path));
}

export function hostCommand(plan: ContainerPlan, repoRoot: string): HostCommand {
  const [executable, ...args] = plan.command;
  if (executable !== 'node') {
    throw new UnmappableTaskDefinitionError(
      plan.constructPath,
      `its command ${JSON.stringify(plan.command)} does not start with node, the only executable the rehearsal maps`,
    );
  }
  const cwd = inRepository(plan, repoRoot, plan.workingDirectory, 'working directory');
  const mapped = args.map((arg) =>
    isAbsolute(arg) ? inRepository(plan, repoRoot, arg, 'command argument') : arg,
  );
  const entry = mapped.find((arg) => !arg.startsWith('-'));
  if (entry === undefined || !existsSync(join(cwd, entry))) {
    throw new UnmappableTaskDefinitionError(
      plan.constructPath,
      `its command runs ${entry ?? 'nothing'}, which is not in the repository`,
    );
  }
  return { command: process.execPath, args: mapped, cwd };
}

/**
 * The one variable that sets the port a load balancer sends to: the task definition must say
 * it (a port left to an app's default cannot be moved, and would be a guess on ECS too).
 */
export function portVariable(plan: ContainerPlan, containerPort: number): string {
  const names = Object.entries(plan.environment)
    .filter(([, value]) => value === String(containerPort))
    .map(([name]) => name);
  if (names.length !== 1) {
    throw new UnmappableTaskDefinitionError(
      plan.constructPath,
      names.length === 0
        ? `no variable of its environment sets the container port ${containerPort} the target group sends to`
        : `several variables (${names.join(', ')}) hold the container port ${containerPort}; which one sets it is ambiguous`,
    );
  }
  return names[0] ?? '';
}

/**
 * The address a load balancer would reach a task at: a non-loopback address of this machine,
 * so a process bound to 127.0.0.1 fails the check as it would on ECS (where the target group
 * connects to the task's network interface). Undefined when this machine has none.
 */
export function targetAddress(): string | undefined {
  for (const addresses of Object.values(networkInterfaces())) {
    for (const address of addresses ?? [])
      if (address.family === 'IPv4' && !address.internal) return address.address;
  }
  return undefined;
}
