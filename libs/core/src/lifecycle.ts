import { ContainerRecords } from './container-records.ts';
import { ContainerService } from './containers.ts';
import type { CoreDeps } from './deps.ts';
import { Reaper } from './reaper.ts';
import { SessionService } from './sessions.ts';
import { TaskEventHandler } from './task-events.ts';

/** The application's use cases, wired together once per process. */
export class Lifecycle {
  /** The container records' writes and outbox, shared by every use case. */
  readonly records: ContainerRecords;
  readonly containers: ContainerService;
  readonly sessions: SessionService;
  readonly taskEvents: TaskEventHandler;
  readonly reaper: Reaper;

  constructor(deps: CoreDeps) {
    this.records = new ContainerRecords(deps);
    this.containers = new ContainerService(deps, this.records);
    this.sessions = new SessionService(deps, this.records, this.containers);
    this.containers.onFinal = (container) => this.sessions.endSessionsOf(container);
    this.taskEvents = new TaskEventHandler(deps, this.containers, this.records);
    this.reaper = new Reaper(deps, this.containers, this.sessions, this.records);
  }
}
