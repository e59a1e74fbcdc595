/**
 * Lifecycle policies in the containers table (docs/design.md, "Lifecycle policies and quotas").
 * Keys begin with `~policy#`, which no containerId can, and the items hold none of the attributes
 * an index keys on (`clientId` is stored as `policyClientId`): no listing, gauge or reaper query
 * ever reads them.
 */
import { UnavailableError, policyKey, type Policy, type StoredPolicy } from '@berth/domain';
import type { Item } from './items.ts';

const POLICY_NUMBER_FIELDS = [
  'idleTimeoutMs',
  'maxLifetimeMs',
  'maxSessions',
  'maxLiveContainersPerUser',
  'maxLiveContainersPerClient',
  'maxProjectsPerClient',
] as const satisfies readonly (keyof Policy)[];

export function toPolicyItem(stored: StoredPolicy): Item {
  const policy: Record<string, number> = {};
  for (const field of POLICY_NUMBER_FIELDS) {
    const value = stored.policy[field];
    if (value !== undefined) policy[field] = value;
  }
  return {
    containerId: policyKey(stored.clientId, stored.projectId ?? undefined),
    policyClientId: stored.clientId,
    ...(stored.projectId === null ? {} : { policyProjectId: stored.projectId }),
    policy,
    updatedAt: stored.updatedAt,
  };
}

export function fromPolicyItem(item: Item): StoredPolicy {
  const bad = (field: string) =>
    new UnavailableError(`stored policy ${String(item.containerId)} is malformed: bad ${field}`);
  const clientId = item.policyClientId;
  if (typeof clientId !== 'string') throw bad('policyClientId');
  const projectId = item.policyProjectId;
  if (projectId !== undefined && typeof projectId !== 'string') throw bad('policyProjectId');
  const raw = item.policy;
  if (typeof raw !== 'object' || raw === null) throw bad('policy');
  const policy: Policy = {};
  for (const field of POLICY_NUMBER_FIELDS) {
    const value = (raw as Record<string, unknown>)[field];
    if (value === undefined) continue;
    if (typeof value !== 'number' || !Number.isInteger(value)) throw bad(`policy.${field}`);
    policy[field] = value;
  }
  const updatedAt = item.updatedAt;
  if (typeof updatedAt !== 'string') throw bad('updatedAt');
  return { clientId, projectId: projectId ?? null, policy, updatedAt };
}
