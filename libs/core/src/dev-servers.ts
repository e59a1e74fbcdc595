import { isLive, type ContainerRecord, type DevServerStateReport } from '@berth/domain';
import type { ContainerRecords } from './container-records.ts';

/**
 * Containers' dev servers (`BERTH_DEV_SERVER_COMMAND`) as their agents report them
 * (`devserver.state`), kept on the container record for the container JSON (the preview
 * gateway reads where to proxy from it). No event is published for them.
 */
export class DevServers {
  private readonly records: ContainerRecords;

  constructor(records: ContainerRecords) {
    this.records = records;
  }

  /**
   * Records a report on the container's current generation while it is live. A report whose
   * sequence is not above the recorded one is older (SQS may deliver out of order) or a
   * repeat, and changes nothing. Resolves with the record as it is after.
   */
  async record(report: DevServerStateReport): Promise<ContainerRecord | undefined> {
    const { containerId, generation, state, port, since, restarts, sequence } = report.payload;
    const result = await this.records.update(containerId, (current) =>
      current.generation !== generation ||
      !isLive(current.status) ||
      (current.devServer !== undefined && current.devServer.sequence >= sequence)
        ? undefined
        : { ...current, devServer: { state, port, since, restarts, sequence } },
    );
    return result?.after;
  }
}
