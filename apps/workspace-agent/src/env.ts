import { isAbsolute, resolve } from 'node:path';
import {
  ConfigError,
  InvalidArgumentError,
  parseContainerId,
  parseDuration,
  type ContainerKey,
  type Env,
} from '@berth/domain';

/** What the runtime hands the agent, parsed and checked once at start. */
export interface AgentEnv {
  containerId: string;
  key: ContainerKey;
  /** Absolute: a relative WORKSPACE_PATH is resolved against the agent's working directory. */
  workspacePath: string;
  repoUrl: string;
  /**
   * Which generation of the container this is; only for logs, so a runtime that does not
   * pass BERTH_GENERATION still gets a working agent (a malformed value is refused).
   */
  generation: number | undefined;
  inputQueueUrl: string;
  outputQueueUrl: string;
  /** Undefined: the built-in workload (append to CHAT.md, print the text back). */
  workloadCommand: string | undefined;
  shutdownGraceMs: number;
  logLevel: string;
  /**
   * The agent reports queue (`berth-agent-reports`), where the agent announces its worktrees
   * (`thread.ready`) and checkpoints (`checkpoint.record`); the workspace role may only send
   * there. Undefined: it announces nothing (a bare agent in tests).
   */
  agentReportsUrl: string | undefined;
  /** How soon a checkpoint commit is pushed; pushes within one interval coalesce. */
  checkpointPushIntervalMs: number;
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
const DEFAULT_SHUTDOWN_GRACE = '60s';
const DEFAULT_CHECKPOINT_PUSH_INTERVAL = '5s';

/**
 * Reads the agent's environment. Throws ConfigError listing every bad variable, so a runtime
 * that misconfigures the agent learns all of it from one failed start.
 */
export function parseAgentEnv(env: Env): AgentEnv {
  const problems: InvalidArgumentError[] = [];
  const value = (name: string): string | undefined => {
    const raw = env[name];
    return raw === undefined || raw.trim() === '' ? undefined : raw.trim();
  };
  const required = (name: string, what: string): string | undefined => {
    const raw = value(name);
    if (raw === undefined)
      problems.push(new InvalidArgumentError(`${name} is required (${what})`, name));
    return raw;
  };
  const check = <T>(read: () => T): T | undefined => {
    try {
      return read();
    } catch (error) {
      if (error instanceof InvalidArgumentError) {
        problems.push(error);
        return undefined;
      }
      throw error;
    }
  };
  const queueUrl = (name: string): string | undefined => {
    const raw = required(name, 'the SQS queue URL');
    if (raw === undefined) return undefined;
    return check(() => {
      const url = URL.parse(raw);
      if (url === null || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
        throw new InvalidArgumentError(
          `${name} must be an http(s) SQS queue URL; got "${raw}"`,
          name,
        );
      }
      return raw;
    });
  };

  const containerIdRaw = required('CONTAINER_ID', 'clientId.projectId.userId');
  const key =
    containerIdRaw === undefined
      ? undefined
      : check(() => parseContainerId(containerIdRaw, 'CONTAINER_ID'));
  const workspaceRaw = required('WORKSPACE_PATH', 'where the git checkout lives');
  const repoUrl = required('BERTH_REPO_URL', "the project's git remote");

  const generationRaw = value('BERTH_GENERATION');
  const generation =
    generationRaw === undefined
      ? undefined
      : check(() => {
          const n = Number(generationRaw);
          if (!/^\d+$/.test(generationRaw) || !Number.isSafeInteger(n) || n < 1) {
            throw new InvalidArgumentError(
              `BERTH_GENERATION must be a whole number from 1; got "${generationRaw}"`,
              'BERTH_GENERATION',
            );
          }
          return n;
        });

  const inputQueueUrl = queueUrl('BERTH_INPUT_QUEUE_URL');
  const outputQueueUrl = queueUrl('BERTH_OUTPUT_QUEUE_URL');

  const shutdownGraceMs = check(() => {
    const ms = parseDuration(
      value('BERTH_SHUTDOWN_GRACE') ?? DEFAULT_SHUTDOWN_GRACE,
      'BERTH_SHUTDOWN_GRACE',
    );
    if (ms <= 0)
      throw new InvalidArgumentError(
        'BERTH_SHUTDOWN_GRACE must be greater than zero',
        'BERTH_SHUTDOWN_GRACE',
      );
    return ms;
  });

  const agentReportsUrl =
    value('BERTH_AGENT_REPORTS_URL') === undefined
      ? undefined
      : queueUrl('BERTH_AGENT_REPORTS_URL');
  const checkpointPushIntervalMs = check(() =>
    parseDuration(
      value('BERTH_CHECKPOINT_PUSH_INTERVAL') ?? DEFAULT_CHECKPOINT_PUSH_INTERVAL,
      'BERTH_CHECKPOINT_PUSH_INTERVAL',
    ),
  );

  const logLevel = value('BERTH_LOG_LEVEL') ?? 'info';
  if (!LOG_LEVELS.includes(logLevel)) {
    problems.push(
      new InvalidArgumentError(
        `BERTH_LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')}; got "${logLevel}"`,
        'BERTH_LOG_LEVEL',
      ),
    );
  }

  if (
    problems.length > 0 ||
    containerIdRaw === undefined ||
    key === undefined ||
    workspaceRaw === undefined ||
    repoUrl === undefined ||
    inputQueueUrl === undefined ||
    outputQueueUrl === undefined ||
    shutdownGraceMs === undefined ||
    checkpointPushIntervalMs === undefined
  ) {
    throw new ConfigError(problems);
  }

  return {
    containerId: containerIdRaw,
    key,
    workspacePath: isAbsolute(workspaceRaw)
      ? resolve(workspaceRaw)
      : resolve(process.cwd(), workspaceRaw),
    repoUrl,
    generation,
    inputQueueUrl,
    outputQueueUrl,
    workloadCommand: value('BERTH_WORKLOAD_COMMAND'),
    shutdownGraceMs,
    logLevel,
    agentReportsUrl,
    checkpointPushIntervalMs,
  };
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
