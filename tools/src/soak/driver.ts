/**
 * The soak run: the local stack behind fault proxies, many users doing random session work,
 * service crashes and fault windows for a set time; then the load stops, the system settles,
 * and the checker compares what the store, the event history, the task log and the git
 * repositories say against what was asked of berth.
 *
 * The parts: `state.ts` (what the run knows and its clients), `load.ts` (the users),
 * `faults.ts` (proxies, crashes, fault windows, agent faults), `checking.ts` (settle, then
 * check with the rules of `checks.ts`) and `report.ts` (the figures and the printout).
 */
import { freePort } from '@berth/testing';
import { startStack, type RunningStack } from '../stack/harness.ts';
import { SoakChecks } from './checking.ts';
import { SoakFaults, countExits, startFaultProxies } from './faults.ts';
import { SoakLoad } from './load.ts';
import type { SoakOptions } from './options.ts';
import { buildReport, type SoakReport } from './report.ts';
import { SoakState } from './state.ts';

export type { DeadLetter, SoakFigures, SoakReport } from './report.ts';

export class SoakRun {
  readonly #state: SoakState;
  readonly #load: SoakLoad;
  readonly #checks: SoakChecks;

  constructor(options: SoakOptions, say: (line: string) => void) {
    this.#state = new SoakState(options, say);
    this.#load = new SoakLoad(this.#state);
    this.#checks = new SoakChecks(this.#state, this.#load);
  }

  async run(): Promise<SoakReport> {
    const state = this.#state;
    const { options } = state;
    const [dynamodbPort, sqsPort] = await Promise.all([freePort(), freePort()]);
    const proxies = await startFaultProxies(state.random.fork(), {
      dynamodb: dynamodbPort,
      sqs: sqsPort,
    });
    state.say(
      `soak: seed ${options.seed}; starting the local stack (services reach DynamoDB via :${proxies.dynamodb.port}, SQS/SNS via :${proxies.sqs.port})`,
    );
    let stack: RunningStack;
    try {
      stack = await startStack(
        {
          ...options.stackEnv,
          BERTH_DYNAMODB_PORT: String(dynamodbPort),
          BERTH_SQS_PORT: String(sqsPort),
          BERTH_SERVICES_ENDPOINT_DYNAMODB: proxies.dynamodb.endpoint,
          BERTH_SERVICES_ENDPOINT_SQS: proxies.sqs.endpoint,
        },
        240_000,
      );
    } catch (error) {
      await Promise.all(Object.values(proxies).map((proxy) => proxy.close()));
      throw error;
    }
    state.stack = stack;
    stack.process?.once('exit', () => {
      if (!state.stackStopping) state.stackExited = true;
    });
    state.say(`soak: stack up at ${stack.url}, data in ${stack.dataDir}`);
    let faults: SoakFaults | undefined;
    try {
      await state.connect();
      const eventPump = this.#load.pumpEvents();

      // The load and the faults.
      faults = new SoakFaults(state, proxies);
      const users = this.#load.users();
      const startedAt = Date.now();
      state.loadStartedAt = startedAt;
      const until = startedAt + options.durationMs;
      state.say(
        `soak: load for ${Math.round(options.durationMs / 1000)} s: ${users.length} users, ${options.projects} projects per client, ${faults.crashesPlanned} crashes and ${faults.faultWindowsPlanned} fault windows planned`,
      );
      faults.start(startedAt);
      const progress = setInterval(() => this.#load.progress(startedAt), 15_000);
      await Promise.all(users.map((user) => this.#load.userLoop(user, until)));
      clearInterval(progress);
      state.figures.loadMs = Date.now() - startedAt;
      await faults.stop();

      // Settle and check.
      const settleStart = Date.now();
      await this.#checks.settleAndCheck(faults.chaos);
      state.figures.settleMs = Date.now() - settleStart;

      state.pollersStopped = true;
      await Promise.all(state.pollerRuns);
      state.eventsClosed = true;
      await state.events.close().catch(() => undefined);
      await eventPump;
    } catch (error) {
      state.violation(
        'stack',
        'soak',
        `the run could not finish: ${error instanceof Error ? error.message : String(error)}`,
      );
    } finally {
      state.stackStopping = true;
      await stack.stop().catch(() => undefined);
      state.pollersStopped = true;
      state.eventsClosed = true;
      await Promise.all(Object.values(proxies).map((proxy) => proxy.close()));
    }

    // What only the files can tell, once the stack is gone.
    this.#checks.checkTasks();
    countExits(state, faults?.chaos, faults?.agentChaos);
    state.closeClients();
    return buildReport(state, faults?.chaos, faults?.agentChaos);
  }
}

export async function runSoak(
  options: SoakOptions,
  say: (line: string) => void,
): Promise<SoakReport> {
  return new SoakRun(options, say).run();
}
