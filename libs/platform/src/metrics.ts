import type { CoreMetrics } from '@berth/core';
import { parseStopReason } from '@berth/domain';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/**
 * One registry per process, exposed on /metrics by services that serve HTTP. When
 * BERTH_EMF=true (on AWS) every observation is also written as a CloudWatch embedded-metric
 * line, which the dashboards and alarms of the CDK app read (namespace `Berth`).
 */
export interface ServiceMetrics {
  registry: Registry;
  core: CoreMetrics;
  /** One value, or many (written 100 to a line, EMF's limit per metric); nothing for none. */
  emf(
    name: string,
    value: number | readonly number[],
    unit?: string,
    dimensions?: Record<string, string>,
  ): void;
}

/** The most values one EMF line may carry for one metric. */
export const EMF_MAX_VALUES = 100;

/** `emf`: BERTH_EMF, as the configuration read it (`BerthConfig.emf`). */
export function createMetrics(service: string, options: { emf: boolean }): ServiceMetrics {
  const registry = new Registry();
  registry.setDefaultLabels({ service });
  collectDefaultMetrics({ register: registry });
  const emfEnabled = options.emf;

  const emfLine = (
    name: string,
    value: number | number[],
    unit: string,
    dimensions: Record<string, string>,
  ): void => {
    const line = {
      _aws: {
        Timestamp: Date.now(),
        CloudWatchMetrics: [
          {
            Namespace: 'Berth',
            Dimensions: [Object.keys(dimensions)],
            Metrics: [{ Name: name, Unit: unit }],
          },
        ],
      },
      ...dimensions,
      [name]: value,
    };
    process.stdout.write(`${JSON.stringify(line)}\n`);
  };
  const emf = (
    name: string,
    value: number | readonly number[],
    unit = 'Count',
    dimensions: Record<string, string> = {},
  ): void => {
    if (!emfEnabled) return;
    if (typeof value === 'number') {
      emfLine(name, value, unit, dimensions);
      return;
    }
    for (let start = 0; start < value.length; start += EMF_MAX_VALUES)
      emfLine(name, value.slice(start, start + EMF_MAX_VALUES), unit, dimensions);
  };

  const starts = new Counter({
    name: 'berth_container_starts_total',
    help: 'Containers found or started, by outcome (created or reused)',
    labelNames: ['outcome'],
    registers: [registry],
  });
  const startFailures = new Counter({
    name: 'berth_container_start_failures_total',
    help: 'Containers that failed to start',
    registers: [registry],
  });
  const stops = new Counter({
    name: 'berth_container_stops_total',
    help: 'Containers that reached a final status, by the kind of stop reason',
    labelNames: ['reason'],
    registers: [registry],
  });
  const lifetime = new Histogram({
    name: 'berth_container_lifetime_seconds',
    help: 'From running to final status',
    buckets: [60, 300, 900, 1800, 3600, 7200, 14400, 43200, 86400],
    registers: [registry],
  });
  const idle = new Histogram({
    name: 'berth_idle_seconds_before_stop',
    help: 'How long a container was idle when the reaper stopped it',
    buckets: [1, 5, 30, 60, 300, 600, 1200, 1800, 3600],
    registers: [registry],
  });
  const orphans = new Counter({
    name: 'berth_orphans_repaired_total',
    help: 'Records without tasks closed and tasks without records stopped',
    labelNames: ['kind'],
    registers: [registry],
  });
  const expired = new Counter({
    name: 'berth_sessions_expired_total',
    help: 'Sessions expired after BERTH_SESSION_TTL without activity',
    registers: [registry],
  });

  const poolClaims = new Counter({
    name: 'berth_pool_claims_total',
    help: 'Misses served by the warm pool (claimed) or not (miss: no free member)',
    labelNames: ['outcome'],
    registers: [registry],
  });
  const claimLatency = new Histogram({
    name: 'berth_pool_claim_seconds',
    help: 'From a miss to its claim of a pool member being stored',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [registry],
  });
  const poolMembers = new Gauge({
    name: 'berth_pool_members',
    help: 'Warm-pool members starting or free',
    registers: [registry],
  });
  const poolFree = new Gauge({
    name: 'berth_pool_free',
    help: 'Warm-pool members free to claim',
    registers: [registry],
  });

  const quotaRefusals = new Counter({
    name: 'berth_quota_refusals_total',
    help: "New generations refused by a quota of their client's policy, by quota name",
    labelNames: ['quota'],
    registers: [registry],
  });
  const lifetimeExpiries = new Counter({
    name: 'berth_lifetime_expiries_total',
    help: 'maxLifetime: container.expiring notices sent (notice) and containers stopped (stop)',
    labelNames: ['stage'],
    registers: [registry],
  });

  const core: CoreMetrics = {
    // The quota name is a bounded set (CLIENT_ONLY_FIELDS); the client id is never a label or a
    // dimension (unbounded: one CloudWatch metric per client); the refusal's log line names it.
    quotaRefused(quota) {
      quotaRefusals.inc({ quota });
      emf('QuotaRefusals', 1, 'Count', { Quota: quota });
    },
    lifetimeExpiry(stage) {
      lifetimeExpiries.inc({ stage });
      emf('LifetimeExpiries', 1, 'Count', { Stage: stage });
    },
    poolClaim(outcome, latencySeconds) {
      poolClaims.inc({ outcome });
      emf(outcome === 'claimed' ? 'PoolClaims' : 'PoolMisses', 1);
      if (latencySeconds !== undefined) {
        claimLatency.observe(latencySeconds);
        emf('PoolClaimLatency', latencySeconds * 1000, 'Milliseconds');
      }
    },
    poolGauges(members, free) {
      poolMembers.set(members);
      poolFree.set(free);
      emf('PoolSize', members);
      emf('PoolFree', free);
    },
    containerStarted(outcome) {
      starts.inc({ outcome });
      emf('ContainerReused', 1, 'Count', { Outcome: outcome });
      if (outcome === 'created') emf('ContainerStarts', 1);
    },
    containerStartFailed() {
      startFailures.inc();
      emf('ContainerStartFailures', 1);
    },
    containerStopped(reason, lifetimeSeconds) {
      stops.inc({ reason: parseStopReason(reason)?.kind ?? 'unknown' });
      if (lifetimeSeconds !== undefined) {
        lifetime.observe(lifetimeSeconds);
        emf('ContainerLifetimeSeconds', lifetimeSeconds, 'Seconds');
      }
    },
    idleStop(idleSeconds) {
      idle.observe(idleSeconds);
      emf('IdleSecondsBeforeStop', idleSeconds, 'Seconds');
    },
    orphanRepaired(kind) {
      orphans.inc({ kind });
      emf('OrphansRepaired', 1, 'Count', { Kind: kind });
    },
    sessionsExpired(count) {
      expired.inc(count);
      emf('OrphanedSessions', count);
    },
  };
  return { registry, core, emf };
}
