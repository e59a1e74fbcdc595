/**
 * The agent's side of its environment: the one module of the agent that touches
 * `process.env`. Every variable is parsed in the domain's config module (loadAgentConfig,
 * loadAgentStartConfig); this module hands it the process's environment, takes the git
 * credentials out of it (so no child inherits them) and sets a pool member's identity in it.
 */
import { resolve } from 'node:path';
import {
  ConfigError,
  InvalidArgumentError,
  loadAgentConfig,
  loadAgentStartConfig,
  type AgentConfig,
  type AgentStartConfig,
  type Env,
} from '@berth/domain';
import { takeGitCredentials, type GitCredentials } from './git-credentials.ts';
import { applyIdentity, type PoolIdentity } from './pool-member.ts';

/** The agent's configuration, its workspace path made absolute. */
export type AgentEnv = AgentConfig;

/**
 * Reads the agent's environment. Throws ConfigError listing every bad variable, so a runtime
 * that misconfigures the agent learns all of it from one failed start. A relative
 * WORKSPACE_PATH is resolved against the agent's working directory.
 */
export function parseAgentEnv(env: Env): AgentEnv {
  const config = loadAgentConfig(env);
  return { ...config, workspacePath: resolve(config.workspacePath) };
}

/** What the agent reads before it knows which container it is. */
export function readStartConfig(): AgentStartConfig {
  return loadAgentStartConfig(process.env);
}

/**
 * The container's configuration and git credentials, or every problem with them. The
 * credentials are taken out of the environment first, so that no child (a workload, git's
 * hooks) inherits them.
 */
export function readAgentEnv():
  { env: AgentEnv; gitCredentials: GitCredentials | undefined } | ConfigError {
  let gitCredentials: GitCredentials | undefined;
  const problems: InvalidArgumentError[] = [];
  try {
    gitCredentials = takeGitCredentials(process.env);
  } catch (error) {
    if (!(error instanceof InvalidArgumentError)) throw error;
    problems.push(error);
  }
  try {
    const env = parseAgentEnv(process.env);
    return problems.length > 0 ? new ConfigError(problems) : { env, gitCredentials };
  } catch (error) {
    if (error instanceof ConfigError) return new ConfigError([...error.problems, ...problems]);
    throw error;
  }
}

/** A claimed pool member becomes its container: the variables a cold start would have had. */
export function becomeIdentity(identity: PoolIdentity): void {
  applyIdentity(process.env, identity);
}

/** No git command may wait for a password on a terminal: a container has no one to type it. */
export function forbidGitPrompts(): void {
  process.env.GIT_TERMINAL_PROMPT ??= '0';
}

/** The environment the AWS call recorder reads (BERTH_AWS_CALL_LOG and the deployed target). */
export function recorderEnv(): Env {
  return process.env;
}

/**
 * How much of the shutdown grace is kept for committing and pushing after the workloads in
 * flight: a quarter, at least 5 s (a loaded machine spawns git slowly) and at most 20 s, but
 * never more than half. The rest is what a workload may still use.
 */
export function saveReserveMs(shutdownGraceMs: number): number {
  return Math.min(
    Math.max(Math.floor(shutdownGraceMs / 4), 5000),
    20_000,
    Math.floor(shutdownGraceMs / 2),
  );
}
