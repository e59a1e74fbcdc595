import { Checkpoints } from './checkpoints.ts';
import { ContainerRecords } from './container-records.ts';
import { ContainerService } from './containers.ts';
import type { CoreDeps } from './deps.ts';
import { DevServers } from './dev-servers.ts';
import { PolicyService } from './policies.ts';
import { PoolService } from './pool.ts';
import { PreviewService } from './preview.ts';
import { Reaper } from './reaper.ts';
import { SessionEndings } from './session-endings.ts';
import { SessionReadiness } from './session-readiness.ts';
import { SessionService } from './sessions.ts';
import { TaskEventHandler } from './task-events.ts';

/**
 * The application's use cases, wired together once per process. Each takes the ones it
 * calls in its constructor, so the order below is the dependency order: records first, then
 * how sessions end (which a container's final status triggers), then containers, and the
 * use cases built on them.
 */
export class UseCases {
  /** The container records' writes and outbox, shared by every use case. */
  readonly records: ContainerRecords;
  /** Lifecycle policies: read, written, resolved and applied to live containers. */
  readonly policies: PolicyService;
  readonly sessionEndings: SessionEndings;
  readonly containers: ContainerService;
  readonly sessions: SessionService;
  /** When sessions are ready (the agent's thread.ready and the container's running). */
  readonly readiness: SessionReadiness;
  /** Threads' checkpoints: recorded as announced, listed, reverted to. */
  readonly checkpoints: Checkpoints;
  /** Containers' dev servers, as their agents report them (devserver.state). */
  readonly devServers: DevServers;
  readonly taskEvents: TaskEventHandler;
  readonly reaper: Reaper;
  /** The warm pool; undefined when BERTH_POOL_SIZE is 0. */
  readonly pool: PoolService | undefined;
  /** What the preview gateway asks: the container a preview opens, and its activity. */
  readonly preview: PreviewService;

  constructor(deps: CoreDeps) {
    this.records = new ContainerRecords(deps);
    this.policies = new PolicyService(deps, this.records);
    this.sessionEndings = new SessionEndings(deps, this.records);
    this.pool =
      deps.pool && deps.pool.size > 0 ? new PoolService(deps, deps.pool, this.records) : undefined;
    this.containers = new ContainerService(deps, this.records, this.sessionEndings, this.pool);
    this.sessions = new SessionService(deps, this.records, this.containers, this.sessionEndings);
    this.readiness = new SessionReadiness(deps);
    this.checkpoints = new Checkpoints(deps);
    this.devServers = new DevServers(this.records);
    this.taskEvents = new TaskEventHandler(
      deps,
      this.records,
      this.containers,
      this.readiness,
      this.pool,
    );
    this.reaper = new Reaper(deps, this.records, this.sessionEndings, this.containers);
    this.preview = new PreviewService(deps, this.records, this.containers);
  }
}
