import {
  NotFoundError,
  UnavailableError,
  changedContainerPolicy,
  containerPolicyOf,
  isLive,
  parseContainerId,
  parsePolicy,
  resolvePolicy,
  type ContainerKey,
  type ContainerPolicy,
  type ContainerRecord,
  type EffectivePolicy,
  type PolicyDefaults,
  type PolicyStore,
  type QuotaCharge,
  type StoredPolicy,
} from '@berth/domain';
import type { ContainerRecords } from './container-records.ts';
import { silentLogger, type CoreDeps } from './deps.ts';

const MINUTE = 60_000;
const PAGE = 100;

function defaultsOf(deps: CoreDeps): PolicyDefaults {
  const { settings } = deps;
  return {
    idleTimeoutMs: settings.idleTimeoutMs,
    maxSessions: settings.maxSessions,
    idleTimeoutMinMs: settings.policyIdleTimeoutMinMs ?? MINUTE,
    idleTimeoutMaxMs: settings.policyIdleTimeoutMaxMs ?? 8 * 60 * MINUTE,
  };
}

/**
 * What a new generation adds to its client's quota counters, or undefined when its client has
 * no quota (nothing is counted then). A project is new when its marker is not stored yet.
 */
export async function quotaChargeFor(
  deps: CoreDeps,
  key: ContainerKey,
): Promise<QuotaCharge | undefined> {
  if (!deps.policies || !deps.store.isKnownProject) return undefined;
  const { client } = await deps.policies.getPolicies(key.clientId, key.projectId);
  const perUser = client?.maxLiveContainersPerUser ?? null;
  const perClient = client?.maxLiveContainersPerClient ?? null;
  const projects = client?.maxProjectsPerClient ?? null;
  if (perUser === null && perClient === null && projects === null) return undefined;
  const newProject =
    projects !== null && !(await deps.store.isKnownProject(key.clientId, key.projectId));
  return {
    clientId: key.clientId,
    userId: key.userId,
    projectId: key.projectId,
    maxLiveContainersPerUser: perUser,
    maxLiveContainersPerClient: perClient,
    newProjectLimit: projects,
    newProject,
  };
}

/**
 * What a new generation's record keeps of its policy: its client's and project's, resolved now
 * (two consistent GetItems, once per generation). Nothing without a policy store: such a
 * record has the deployment's defaults.
 */
export async function policyForNewGeneration(
  deps: CoreDeps,
  key: Pick<ContainerKey, 'clientId' | 'projectId'>,
): Promise<{ policy?: ContainerPolicy }> {
  if (!deps.policies) return {};
  const { client, project } = await deps.policies.getPolicies(key.clientId, key.projectId);
  return {
    policy: containerPolicyOf(
      resolvePolicy(client, project, defaultsOf(deps)),
      deps.settings.expiryNoticeMs ?? 5 * MINUTE,
    ),
  };
}

/**
 * Lifecycle policies (docs/design.md, "Lifecycle policies and quotas"): read, written and
 * resolved here. A change is applied to the live containers of its scope before it is
 * answered, so the reaper's next tick acts on it with no restart and no cache to expire.
 */
export class PolicyService {
  private readonly deps: CoreDeps;
  private readonly records: ContainerRecords;

  constructor(deps: CoreDeps, records: ContainerRecords) {
    this.deps = deps;
    this.records = records;
  }

  private get log() {
    return this.deps.log ?? silentLogger;
  }

  get defaults(): PolicyDefaults {
    return defaultsOf(this.deps);
  }

  get expiryNoticeMs(): number {
    return this.deps.settings.expiryNoticeMs ?? 5 * MINUTE;
  }

  private get store(): PolicyStore {
    const store = this.deps.policies;
    if (!store) throw new UnavailableError('this deployment keeps no lifecycle policies');
    return store;
  }

  async get(clientId: string, projectId: string | null): Promise<StoredPolicy> {
    const stored = await this.store.getPolicy(clientId, projectId);
    if (!stored) {
      throw new NotFoundError(
        projectId === null
          ? `client ${clientId} has no policy`
          : `project ${projectId} of client ${clientId} has no policy`,
      );
    }
    return stored;
  }

  /** Checks and stores a policy (a bad value: InvalidArgumentError naming field and bound). */
  async put(clientId: string, projectId: string | null, body: unknown): Promise<StoredPolicy> {
    const policy = parsePolicy(body, this.defaults, projectId === null ? 'client' : 'project');
    const stored: StoredPolicy = {
      clientId,
      projectId,
      policy,
      updatedAt: this.deps.clock.now().toISOString(),
    };
    await this.store.putPolicy(stored);
    await this.applyToLive(clientId, projectId);
    return stored;
  }

  async delete(clientId: string, projectId: string | null): Promise<void> {
    const deleted = await this.store.deletePolicy(clientId, projectId);
    // Applied even when there was none: a retry after a failure mid-way finishes the change.
    await this.applyToLive(clientId, projectId);
    if (!deleted) await this.get(clientId, projectId);
  }

  /** The effective policy of a (client, project), each value with its source. */
  async resolve(key: Pick<ContainerKey, 'clientId' | 'projectId'>): Promise<EffectivePolicy> {
    if (!this.deps.policies) return resolvePolicy(undefined, undefined, this.defaults);
    const { client, project } = await this.deps.policies.getPolicies(key.clientId, key.projectId);
    return resolvePolicy(client, project, this.defaults);
  }

  /** What a new generation's record keeps of its policy. */
  async containerPolicyFor(key: Pick<ContainerKey, 'clientId' | 'projectId'>) {
    return containerPolicyOf(await this.resolve(key), this.expiryNoticeMs);
  }

  /** The policy a record carries, or the deployment's defaults for a record from before them. */
  policyOf(container: ContainerRecord): ContainerPolicy {
    return (
      container.policy ??
      containerPolicyOf(resolvePolicy(undefined, undefined, this.defaults), this.expiryNoticeMs)
    );
  }

  /** `GET /v1/containers/{id}/policy`: every value and where it came from. */
  async effectiveFor(containerId: string): Promise<{
    effective: EffectivePolicy;
    container: ContainerRecord;
  }> {
    const key = parseContainerId(containerId);
    const container = await this.deps.store.getContainer(containerId);
    if (!container) throw new NotFoundError(`container ${containerId} not found`);
    return { effective: await this.resolve(key), container };
  }

  /**
   * Rewrites the policy of every live container of the scope (a project's, or the whole
   * client's), each with the usual version-conditional write. Their number is bounded by the
   * client's quota; a Query of the client's (or project's) index, never a scan.
   */
  private async applyToLive(clientId: string, projectId: string | null): Promise<number> {
    const now = this.deps.clock.now().toISOString();
    const byProject = new Map<string, EffectivePolicy>();
    let changed = 0;
    let cursor: string | undefined;
    do {
      const page = await this.deps.store.listContainers(
        projectId === null ? { clientId } : { clientId, projectId },
        PAGE,
        cursor,
      );
      for (const container of page.items) {
        if (!isLive(container.status)) continue;
        let effective = byProject.get(container.projectId);
        if (!effective) {
          effective = await this.resolve(container);
          byProject.set(container.projectId, effective);
        }
        const resolved = effective;
        const result = await this.records.update(container.containerId, (current) => {
          if (current.generation !== container.generation || !isLive(current.status)) {
            return undefined;
          }
          const next = changedContainerPolicy(this.policyOf(current), resolved, now);
          if (JSON.stringify(next) === JSON.stringify(current.policy)) return undefined;
          return { ...current, policy: next };
        });
        if (result?.changed) changed += 1;
      }
      cursor = page.nextCursor ?? undefined;
    } while (cursor);
    this.log.info(
      { clientId, projectId, containers: changed },
      'policy applied to live containers',
    );
    return changed;
  }
}
