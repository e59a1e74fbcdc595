/**
 * The workspace task definition the local runtime plays, when it plays ECS for a deploy
 * rehearsal (tools/src/rehearse): the agent runs with the container's command, working
 * directory and environment as synthesized, plus only what RunTask's override adds, as on
 * ECS. The task's volumes are directories of this machine: a path inside a mount point (in
 * the synthesized or the override environment) is translated to the directory standing in
 * for that volume, as the container's own file system would show it.
 */
import { readFileSync } from 'node:fs';

export interface AgentTaskDefinition {
  /** argv: the executable and its arguments, already mapped to this machine. */
  command: string[];
  workingDirectory: string;
  environment: Record<string, string>;
  mounts: { containerPath: string; hostPath: string }[];
  /** The region task ARNs are made in (the deployed stack's). */
  region?: string;
}

export class AgentTaskDefinitionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AgentTaskDefinitionError';
  }
}

export function readAgentTaskDefinition(path: string): AgentTaskDefinition {
  let parsed: Partial<AgentTaskDefinition>;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8')) as Partial<AgentTaskDefinition>;
  } catch (error) {
    throw new AgentTaskDefinitionError(
      `BERTH_AGENT_TASK_DEFINITION ${path} is not readable JSON: ${error instanceof Error ? error.message : String(error)}`,
    );
  }
  const { command, workingDirectory, environment, mounts } = parsed;
  if (
    !Array.isArray(command) ||
    command.length === 0 ||
    !command.every((p) => typeof p === 'string')
  )
    throw new AgentTaskDefinitionError(`${path}: command must be a non-empty list of strings`);
  if (typeof workingDirectory !== 'string')
    throw new AgentTaskDefinitionError(`${path}: workingDirectory must be a string`);
  if (environment === null || typeof environment !== 'object')
    throw new AgentTaskDefinitionError(`${path}: environment must be an object`);
  return {
    command,
    workingDirectory,
    environment,
    mounts: Array.isArray(mounts) ? mounts : [],
    ...(typeof parsed.region === 'string' ? { region: parsed.region } : {}),
  };
}

/**
 * What the local runtime gives an agent it runs from a task definition with volumes: the
 * volumes as JSON `[{containerPath, hostPath}]` (see BERTH_LOCAL_MOUNTS in docs/contract.md).
 */
export const LOCAL_MOUNTS_VARIABLE = 'BERTH_LOCAL_MOUNTS';

/** A path inside a mount point, as the directory standing in for the volume has it. */
export function onHost(value: string, mounts: AgentTaskDefinition['mounts']): string {
  for (const { containerPath, hostPath } of mounts) {
    const root = containerPath.replace(/\/+$/, '');
    if (value === root) return hostPath;
    if (value.startsWith(`${root}/`)) return `${hostPath}${value.slice(root.length)}`;
  }
  return value;
}

export function translateEnvironment(
  env: Record<string, string>,
  mounts: AgentTaskDefinition['mounts'],
): Record<string, string> {
  return Object.fromEntries(
    Object.entries(env).map(([name, value]) => [name, onHost(value, mounts)]),
  );
}
