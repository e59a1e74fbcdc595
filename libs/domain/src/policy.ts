/**
 * Lifecycle policies and quotas (docs/design.md, "Lifecycle policies and quotas"): what a
 * client or a project may set, the bounds it must stay within, and how the effective value of
 * each field is resolved (project, then client, then the deployment's defaults). No I/O.
 */
import Type, { type Static } from 'typebox';
import { formatDuration, parseDuration } from './duration.ts';
import { InvalidArgumentError } from './errors.ts';
import { validator } from './validation.ts';

const Duration = Type.String({
  pattern: '^[0-9]+(ms|s|m|h|d)$',
  description: 'a whole number and a unit: 250ms, 5s, 20m, 2h, 1d',
});
const Count = (description: string) =>
  Type.Integer({ minimum: 1, maximum: 1_000_000, description });

/** A policy as written through the API: every field optional, durations as text. */
export const PolicySchema = Type.Object(
  {
    idleTimeout: Type.Optional(Duration),
    maxLifetime: Type.Optional(Duration),
    maxSessions: Type.Optional(
      Type.Integer({ minimum: 1, maximum: 1000, description: 'sessions per container' }),
    ),
    maxLiveContainersPerUser: Type.Optional(Count('live containers of one user of the client')),
    maxLiveContainersPerClient: Type.Optional(Count('live containers of the client')),
    maxProjectsPerClient: Type.Optional(Count('distinct project ids of the client')),
  },
  { $id: 'Policy', additionalProperties: false },
);
export type PolicyJson = Static<typeof PolicySchema>;

/** Fields that only a client's policy may set: a project cannot lift its client's cap. */
export const CLIENT_ONLY_FIELDS = [
  'maxLiveContainersPerUser',
  'maxLiveContainersPerClient',
  'maxProjectsPerClient',
] as const;

export const POLICY_FIELDS = [
  'idleTimeout',
  'maxLifetime',
  'maxSessions',
  ...CLIENT_ONLY_FIELDS,
] as const;
export type PolicyField = (typeof POLICY_FIELDS)[number];

/** A policy as stored and resolved: durations in milliseconds. */
export interface Policy {
  idleTimeoutMs?: number;
  maxLifetimeMs?: number;
  maxSessions?: number;
  maxLiveContainersPerUser?: number;
  maxLiveContainersPerClient?: number;
  maxProjectsPerClient?: number;
}

/** The deployment-wide defaults and bounds (BERTH_IDLE_TIMEOUT, BERTH_POLICY_IDLE_TIMEOUT_*...). */
export interface PolicyDefaults {
  idleTimeoutMs: number;
  maxSessions: number;
  idleTimeoutMinMs: number;
  idleTimeoutMaxMs: number;
}

/** A maximum lifetime shorter than this could stop a container before it finished starting. */
export const MIN_MAX_LIFETIME_MS = 1_000;
export const MAX_MAX_LIFETIME_MS = 30 * 86_400_000;

export type PolicySource = 'project' | 'client' | 'default';

export interface EffectiveValue<T> {
  value: T;
  source: PolicySource;
}

/** Every field's value and where it came from; `null`: no limit. */
export interface EffectivePolicy {
  idleTimeoutMs: EffectiveValue<number>;
  maxLifetimeMs: EffectiveValue<number | null>;
  maxSessions: EffectiveValue<number>;
  maxLiveContainersPerUser: EffectiveValue<number | null>;
  maxLiveContainersPerClient: EffectiveValue<number | null>;
  maxProjectsPerClient: EffectiveValue<number | null>;
}

const policyJson = validator<PolicyJson>(PolicySchema);

/**
 * Parses and checks a policy written through the API. A bad value is an InvalidArgumentError
 * naming the field and the bound it broke; `scope` 'project' refuses the client-only quotas.
 */
export function parsePolicy(
  body: unknown,
  defaults: PolicyDefaults,
  scope: 'client' | 'project',
): Policy {
  const json = policyJson.parse(body);
  const policy: Policy = {};
  if (json.idleTimeout !== undefined) {
    const ms = parseDuration(json.idleTimeout, 'idleTimeout');
    if (ms < defaults.idleTimeoutMinMs || ms > defaults.idleTimeoutMaxMs) {
      throw new InvalidArgumentError(
        `idleTimeout must be from ${formatDuration(defaults.idleTimeoutMinMs)} (BERTH_POLICY_IDLE_TIMEOUT_MIN) to ${formatDuration(defaults.idleTimeoutMaxMs)} (BERTH_POLICY_IDLE_TIMEOUT_MAX); got "${json.idleTimeout}"`,
        'idleTimeout',
      );
    }
    policy.idleTimeoutMs = ms;
  }
  if (json.maxLifetime !== undefined) {
    const ms = parseDuration(json.maxLifetime, 'maxLifetime');
    if (ms < MIN_MAX_LIFETIME_MS || ms > MAX_MAX_LIFETIME_MS) {
      throw new InvalidArgumentError(
        `maxLifetime must be from ${formatDuration(MIN_MAX_LIFETIME_MS)} to ${formatDuration(MAX_MAX_LIFETIME_MS)}; got "${json.maxLifetime}"`,
        'maxLifetime',
      );
    }
    policy.maxLifetimeMs = ms;
  }
  if (json.maxSessions !== undefined) policy.maxSessions = json.maxSessions;
  for (const field of CLIENT_ONLY_FIELDS) {
    const value = json[field];
    if (value === undefined) continue;
    if (scope === 'project') {
      throw new InvalidArgumentError(
        `${field} is a quota of the whole client: set it on the client's policy, not a project's`,
        field,
      );
    }
    policy[field] = value;
  }
  return policy;
}

/** A stored policy as the API shows it. */
export function toPolicyJson(policy: Policy): PolicyJson {
  const json: PolicyJson = {};
  if (policy.idleTimeoutMs !== undefined) json.idleTimeout = formatDuration(policy.idleTimeoutMs);
  if (policy.maxLifetimeMs !== undefined) json.maxLifetime = formatDuration(policy.maxLifetimeMs);
  if (policy.maxSessions !== undefined) json.maxSessions = policy.maxSessions;
  for (const field of CLIENT_ONLY_FIELDS) {
    const value = policy[field];
    if (value !== undefined) json[field] = value;
  }
  return json;
}

function pick<T>(project: T | undefined, client: T | undefined, fallback: T): EffectiveValue<T> {
  if (project !== undefined) return { value: project, source: 'project' };
  if (client !== undefined) return { value: client, source: 'client' };
  return { value: fallback, source: 'default' };
}

/**
 * Each field from the project's policy, else the client's, else the deployment's default. The
 * idle timeout is clamped to the bounds in force now, so bounds lowered after a policy was
 * written limit it rather than break it; the quotas are read from the client's policy only.
 */
export function resolvePolicy(
  client: Policy | undefined,
  project: Policy | undefined,
  defaults: PolicyDefaults,
): EffectivePolicy {
  const idle = pick(project?.idleTimeoutMs, client?.idleTimeoutMs, defaults.idleTimeoutMs);
  const clamped =
    idle.source === 'default'
      ? idle.value
      : Math.min(Math.max(idle.value, defaults.idleTimeoutMinMs), defaults.idleTimeoutMaxMs);
  return {
    idleTimeoutMs: { value: clamped, source: idle.source },
    maxLifetimeMs: pick<number | null>(project?.maxLifetimeMs, client?.maxLifetimeMs, null),
    maxSessions: pick(project?.maxSessions, client?.maxSessions, defaults.maxSessions),
    maxLiveContainersPerUser: pick<number | null>(
      undefined,
      client?.maxLiveContainersPerUser,
      null,
    ),
    maxLiveContainersPerClient: pick<number | null>(
      undefined,
      client?.maxLiveContainersPerClient,
      null,
    ),
    maxProjectsPerClient: pick<number | null>(undefined, client?.maxProjectsPerClient, null),
  };
}

/**
 * What a container record keeps of its effective policy, so that the hot path and the reaper
 * need no policy read. `idleTimeoutSince`: when a shortened idle timeout took effect (it counts
 * from then), else null.
 */
export interface ContainerPolicy {
  idleTimeoutMs: number;
  idleTimeoutSince: string | null;
  maxLifetimeMs: number | null;
  maxSessions: number;
  /** BERTH_EXPIRY_NOTICE when the policy was resolved: container.expiring comes this early. */
  expiryNoticeMs: number;
}

export function containerPolicyOf(
  effective: EffectivePolicy,
  expiryNoticeMs: number,
): ContainerPolicy {
  return {
    idleTimeoutMs: effective.idleTimeoutMs.value,
    idleTimeoutSince: null,
    maxLifetimeMs: effective.maxLifetimeMs.value,
    maxSessions: effective.maxSessions.value,
    expiryNoticeMs,
  };
}

/**
 * The record's policy after a policy change at `now`: a shortened idle timeout counts from the
 * change (never stopping a container retroactively); a lengthened one from idleSince.
 */
export function changedContainerPolicy(
  before: ContainerPolicy,
  effective: EffectivePolicy,
  now: string,
): ContainerPolicy {
  const next = containerPolicyOf(effective, before.expiryNoticeMs);
  if (next.idleTimeoutMs < before.idleTimeoutMs) next.idleTimeoutSince = now;
  else if (next.idleTimeoutMs === before.idleTimeoutMs)
    next.idleTimeoutSince = before.idleTimeoutSince;
  return next;
}

/** When an idle container's idle stop is due. */
export function idleDueAt(idleSince: string, policy: ContainerPolicy): string {
  const from =
    policy.idleTimeoutSince !== null && policy.idleTimeoutSince > idleSince
      ? policy.idleTimeoutSince
      : idleSince;
  return new Date(Date.parse(from) + policy.idleTimeoutMs).toISOString();
}

/** When a generation created at `createdAt` reaches its maximum lifetime, or null. */
export function lifetimeEndsAt(createdAt: string, policy: ContainerPolicy): string | null {
  return policy.maxLifetimeMs === null
    ? null
    : new Date(Date.parse(createdAt) + policy.maxLifetimeMs).toISOString();
}

/** The effective policy as the API shows it: durations as text, each with its source. */
export function toEffectivePolicyJson(
  effective: EffectivePolicy,
): Record<PolicyField, { value: string | number | null; source: PolicySource }> {
  const duration = (v: EffectiveValue<number | null>) => ({
    value: v.value === null ? null : formatDuration(v.value),
    source: v.source,
  });
  return {
    idleTimeout: duration(effective.idleTimeoutMs),
    maxLifetime: duration(effective.maxLifetimeMs),
    maxSessions: effective.maxSessions,
    maxLiveContainersPerUser: effective.maxLiveContainersPerUser,
    maxLiveContainersPerClient: effective.maxLiveContainersPerClient,
    maxProjectsPerClient: effective.maxProjectsPerClient,
  };
}

/** Keys of policy items in the containers table (`~` is not in the id alphabet). */
export function policyKey(clientId: string, projectId?: string): string {
  return projectId === undefined ? `~policy#${clientId}` : `~policy#${clientId}#${projectId}`;
}

/** A stored policy with when it was last written. */
export interface StoredPolicy {
  clientId: string;
  projectId: string | null;
  policy: Policy;
  updatedAt: string;
}

/** Where policies are kept (docs/design.md: items of the containers table under `~policy#`). */
export interface PolicyStore {
  getPolicy(clientId: string, projectId: string | null): Promise<StoredPolicy | undefined>;
  /** The client's and the project's policy at once (one batch read). */
  getPolicies(
    clientId: string,
    projectId: string,
  ): Promise<{ client: Policy | undefined; project: Policy | undefined }>;
  putPolicy(stored: StoredPolicy): Promise<void>;
  /** True when there was one to delete. */
  deletePolicy(clientId: string, projectId: string | null): Promise<boolean>;
}
