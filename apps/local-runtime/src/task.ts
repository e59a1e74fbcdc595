import type { Tag } from './protocol.ts';

export type LocalTaskStatus = 'PENDING' | 'RUNNING' | 'STOPPED';

/** What the local runtime knows of one task; the process handle is kept apart. */
export interface TaskState {
  taskArn: string;
  taskId: string;
  clusterArn: string;
  taskDefinitionArn: string;
  containerName: string;
  containerArn: string;
  startedBy: string | undefined;
  group: string | undefined;
  launchType: string | undefined;
  clientToken: string | undefined;
  tags: Tag[];
  /** The container override environment, as RunTask gave it. */
  environment: Record<string, string>;
  containerId: string;
  generation: number;
  clientId: string;
  projectId: string;
  lastStatus: LocalTaskStatus;
  desiredStatus: 'RUNNING' | 'STOPPED';
  createdAt: Date;
  startedAt: Date | undefined;
  stoppingAt: Date | undefined;
  stoppedAt: Date | undefined;
  stopCode: string | undefined;
  stoppedReason: string | undefined;
  exitCode: number | undefined;
  /** Increases with every change, as ECS's task version does; events carry it. */
  version: number;
  logPath: string;
  /** The port its agent's dev server gets (BERTH_DEV_SERVER_PORT), free when the task started. */
  devServerPort?: number;
}
