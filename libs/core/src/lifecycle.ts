import { ContainerService } from './containers.ts';
import type { CoreDeps } from './deps.ts';
import { Reaper } from './reaper.ts';
import { SessionService } from './sessions.ts';
import { TaskEventHandler } from './task-events.ts';

/** The application's use cases, wired together once per process. */
export class Lifecycle {
  readonly containers: ContainerService;
  readonly sessions: SessionService;
  readonly taskEvents: TaskEventHandler;
  readonly reaper: Reaper;

  constructor(deps: CoreDeps) {
    this.containers = new ContainerService(deps);
    this.sessions = new SessionService(deps, this.containers);
    this.containers.onFinal = (container) => this.sessions.endSessionsOf(container);
    this.taskEvents = new TaskEventHandler(deps, this.containers);
    this.reaper = new Reaper(deps, this.containers, this.sessions);
  }
}
