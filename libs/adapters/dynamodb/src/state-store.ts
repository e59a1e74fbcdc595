/**
 * The StateStore port on DynamoDB. Every write is conditional, so concurrent writers
 * (several service replicas, duplicate SQS deliveries) can never both win; the loser gets
 * a StaleWriteError, re-reads and decides again.
 */
import {
  DescribeTableCommand,
  DynamoDBClient,
  type ConsumedCapacity,
} from '@aws-sdk/client-dynamodb';
import {
  DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
  TransactWriteCommand,
  UpdateCommand,
  type QueryCommandInput,
} from '@aws-sdk/lib-dynamodb';
import {
  CapacityExceededError,
  InvalidArgumentError,
  StaleWriteError,
  systemClock,
  type CheckpointRecord,
  type Clock,
  type QuotaRepair,
  type CommandOutcomeRecord,
  type ContainerExpectation,
  type ContainerFilter,
  type ContainerGauges,
  type ContainerRecord,
  type ContainerStatus,
  type ContainerWrite,
  type Page,
  type PoolMemberRecord,
  type PoolMemberWrite,
  type PoolSlotRecord,
  type PoolSlotWrite,
  type PoolStore,
  type Policy,
  type PolicyStore,
  type StoredPolicy,
  policyKey,
  type SessionExpectation,
  type SessionRecord,
  type StateStore,
  type StoreChange,
  poolMemberKey,
  poolSlotKey,
} from '@berth/domain';
import { isDeepStrictEqual } from 'node:util';
import { toDomainError } from './errors.ts';

/** Partition value of `due-index` for quota counters due for a recount (`dueAt`: since when). */
const QUOTA_DUE_KEY = 'quota';
const QUOTA_REPAIR_ATTEMPTS = 5;
const EPOCH = '1970-01-01T00:00:00.000Z';
/**
 * Set on a `live` counter by every change: who it counts (for the recount), when it last
 * changed (the repair's condition), and since when it is due (kept from its first change after
 * the last check).
 */
const QUOTA_CHECK_SET =
  'dueKey = :quotaDue, dueAt = if_not_exists(dueAt, :now), changedAt = :now, quotaClientId = :quotaClient, quotaUserId = :quotaUser';

function quotaCheckValues(owner: { clientId: string; userId?: string }, now: string) {
  return {
    ':quotaDue': QUOTA_DUE_KEY,
    ':now': now,
    ':quotaClient': owner.clientId,
    // Absent attributes cannot be SET; a client counter carries an empty user id.
    ':quotaUser': owner.userId ?? '',
  };
}

/** Quota counter items (`~` is not in the id alphabet; only `dueKey`/`dueAt` are indexed). */
function quotaKeys(clientId: string, userId: string, projectId: string) {
  return {
    client: `~quota#${clientId}`,
    user: `~quota#${clientId}#user#${userId}`,
    projects: `~quota#${clientId}#projects`,
    project: `~project#${clientId}#${projectId}`,
  };
}
import { fromPolicyItem, toPolicyItem } from './policy-items.ts';
import {
  fromMemberItem,
  fromSlotItem,
  toMemberItem,
  toSlotItem,
  versionCondition,
} from './pool-items.ts';
import {
  ACTIVE_KEY,
  DUE_KEY,
  IDLE_KEY,
  PENDING_KEY,
  checkpointKey,
  checkpointLogPartition,
  fromCheckpointItem,
  toCheckpointItems,
  fromContainerItem,
  fromOutcomeItem,
  fromSessionItem,
  outcomeKey,
  toOutcomeItem,
  toContainerItem,
  toSessionItem,
  type Item,
} from './items.ts';
import {
  decodeCursor,
  encodeCursor,
  keyOf,
  partitionOf,
  planContainerQuery,
  type ContainerQueryPlan,
  type KeyCondition,
} from './listing.ts';
import { CONTAINER_INDEXES, SESSION_INDEXES } from './tables.ts';

export interface ConsumedCapacityDetail {
  operation: 'get' | 'put' | 'transact-write' | 'query';
  table: string;
  index: string | undefined;
}

export type ConsumedCapacityListener = (units: number, detail: ConsumedCapacityDetail) => void;

export interface DynamoStateStoreOptions {
  /** Created from the environment (AWS_REGION, AWS_ENDPOINT_URL_DYNAMODB...) when absent. */
  client?: DynamoDBClient;
  containerTable: string;
  sessionTable: string;
  /** Told the capacity units of every request, so a benchmark can report what a sweep costs. */
  onConsumedCapacity?: ConsumedCapacityListener;
  /** Fallback for TTL when a final record carries no stop or release time. */
  clock?: Clock;
}

interface ConditionalPut {
  TableName: string;
  Item: Item;
  ConditionExpression: string;
  ExpressionAttributeNames?: Record<string, string>;
  ExpressionAttributeValues?: Record<string, unknown>;
}

type Condition = Pick<
  ConditionalPut,
  'ConditionExpression' | 'ExpressionAttributeNames' | 'ExpressionAttributeValues'
>;

/** With a FilterExpression DynamoDB counts items before filtering, so read a bit further per page. */
const MIN_FILTERED_PAGE = 100;

/** A condition that failed on a retried attempt of the SDK (`$metadata.attempts` above 1). */
function retriedConditionFailure(error: unknown): boolean {
  if (!(error instanceof Error) || error.name !== 'ConditionalCheckFailedException') return false;
  const metadata = (error as { $metadata?: { attempts?: number } }).$metadata;
  return (metadata?.attempts ?? 1) > 1;
}

function assertLimit(limit: number): void {
  if (!Number.isInteger(limit) || limit < 1) {
    throw new InvalidArgumentError(`limit must be a positive integer; got ${limit}`, 'limit');
  }
}

function containerCondition(write: ContainerWrite): Condition {
  const expect: ContainerExpectation = write.expect;
  switch (expect.kind) {
    case 'new-generation':
      if (expect.previousGeneration === null) {
        return { ConditionExpression: 'attribute_not_exists(containerId)' };
      }
      if (write.record.generation !== expect.previousGeneration + 1) {
        throw new InvalidArgumentError(
          `a new generation of ${write.record.containerId} must be ${expect.previousGeneration + 1}; got ${write.record.generation}`,
          'generation',
        );
      }
      return {
        ConditionExpression: '#generation = :previousGeneration AND #status IN (:stopped, :failed)',
        ExpressionAttributeNames: { '#generation': 'generation', '#status': 'status' },
        ExpressionAttributeValues: {
          ':previousGeneration': expect.previousGeneration,
          ':stopped': 'stopped',
          ':failed': 'failed',
        },
      };
    case 'version':
      return {
        ConditionExpression: '#version = :version',
        ExpressionAttributeNames: { '#version': 'version' },
        ExpressionAttributeValues: { ':version': expect.version },
      };
  }
}

function sessionCondition(expect: SessionExpectation): Condition {
  switch (expect.kind) {
    case 'absent':
      return { ConditionExpression: 'attribute_not_exists(sessionId)' };
    case 'status': {
      const clauses = ['#status = :status'];
      const names: Record<string, string> = { '#status': 'status' };
      const values: Record<string, unknown> = { ':status': expect.status };
      for (const [field, value] of Object.entries(expect.unchanged ?? {})) {
        names[`#${field}`] = field;
        if (value === null || value === undefined) {
          clauses.push(`attribute_not_exists(#${field})`);
        } else {
          clauses.push(`#${field} = :${field}`);
          values[`:${field}`] = value;
        }
      }
      return {
        ConditionExpression: clauses.join(' AND '),
        ExpressionAttributeNames: names,
        ExpressionAttributeValues: values,
      };
    }
  }
}

export class DynamoStateStore implements StateStore, PoolStore, PolicyStore {
  readonly #client: DynamoDBClient;
  readonly #documents: DynamoDBDocumentClient;
  readonly #containerTable: string;
  readonly #sessionTable: string;
  readonly #clock: Clock;
  readonly #onConsumedCapacity: ConsumedCapacityListener | undefined;
  #consumedCapacityUnits = 0;

  constructor(options: DynamoStateStoreOptions) {
    this.#client = options.client ?? new DynamoDBClient({});
    this.#documents = DynamoDBDocumentClient.from(this.#client, {
      marshallOptions: { removeUndefinedValues: true },
    });
    this.#containerTable = options.containerTable;
    this.#sessionTable = options.sessionTable;
    this.#clock = options.clock ?? systemClock;
    this.#onConsumedCapacity = options.onConsumedCapacity;
  }

  /** Capacity units this store has consumed since it was made. */
  get consumedCapacityUnits(): number {
    return this.#consumedCapacityUnits;
  }

  async getContainer(containerId: string): Promise<ContainerRecord | undefined> {
    const item = await this.#get(this.#containerTable, { containerId });
    return item === undefined ? undefined : fromContainerItem(item);
  }

  async getSession(sessionId: string): Promise<SessionRecord | undefined> {
    const item = await this.#get(this.#sessionTable, { sessionId });
    return item === undefined ? undefined : fromSessionItem(item);
  }

  async getOutcome(commandId: string): Promise<CommandOutcomeRecord | undefined> {
    const item = await this.#get(this.#sessionTable, { sessionId: outcomeKey(commandId) });
    return item === undefined ? undefined : fromOutcomeItem(item);
  }

  async write(change: StoreChange): Promise<void> {
    const now = this.#clock.now();
    const puts: ConditionalPut[] = [
      ...(change.containers ?? []).map((write) => ({
        TableName: this.#containerTable,
        Item: toContainerItem(write.record, now),
        ...containerCondition(write),
      })),
      ...(change.sessions ?? []).map((write) => ({
        TableName: this.#sessionTable,
        Item: toSessionItem(write.record, now),
        ...sessionCondition(write.expect),
      })),
      ...(change.outcomes ?? []).map((outcome) => ({
        TableName: this.#sessionTable,
        Item: toOutcomeItem(outcome, now),
        ConditionExpression: 'attribute_not_exists(sessionId)',
      })),
    ];
    if (change.quota) {
      await this.#writeWithQuota(puts, change.quota);
      return;
    }
    await this.#put(puts);
  }

  /**
   * Recounts the `live` quota counters that are due (docs/design.md, "Quota counters are
   * repaired"): one Query of the sparse due-index (partition `quota`), so the cost follows the
   * counters changed or refused since their last check, not the number of clients. A counter is
   * due once its first change since its last check is at or before `changedAtOrBefore` (the
   * sweep passes now minus BERTH_SWEEP_INTERVAL, so a recent write has reached clientId-index),
   * or once it refused a start. Each is recounted from clientId-index and written with a
   * condition on the value and change time it was read with: a start or stop meanwhile makes the
   * write lose, and the counter is read and recounted again.
   */
  async repairQuotaCounters(changedAtOrBefore: string, limit: number): Promise<QuotaRepair[]> {
    assertLimit(limit);
    const { items } = await this.#readPages(
      {
        kind: 'query',
        input: {
          TableName: this.#containerTable,
          IndexName: CONTAINER_INDEXES.due,
          KeyConditionExpression: 'dueKey = :due AND dueAt <= :before',
          ExpressionAttributeValues: { ':due': QUOTA_DUE_KEY, ':before': changedAtOrBefore },
        },
      },
      limit,
    );
    const repairs: QuotaRepair[] = [];
    for (const item of items) {
      const repair = await this.#repairQuotaCounter(String(item.containerId), changedAtOrBefore);
      if (repair) repairs.push(repair);
    }
    return repairs;
  }

  async #repairQuotaCounter(
    key: string,
    changedAtOrBefore: string,
  ): Promise<QuotaRepair | undefined> {
    for (let attempt = 0; attempt < QUOTA_REPAIR_ATTEMPTS; attempt += 1) {
      const counter = await this.#get(this.#containerTable, { containerId: key });
      const clientId = counter?.quotaClientId;
      if (!counter || typeof clientId !== 'string' || counter.dueKey !== QUOTA_DUE_KEY) return;
      const changedAt = typeof counter.changedAt === 'string' ? counter.changedAt : '';
      // Changed since the query's cutoff: its write may not be in clientId-index yet. It stays
      // due, from its last change, so that busy counters do not hold the head of the index.
      if (changedAt > changedAtOrBefore) {
        await this.#postponeQuotaCheck(key, changedAt);
        return;
      }
      const userId =
        typeof counter.quotaUserId === 'string' && counter.quotaUserId !== ''
          ? counter.quotaUserId
          : undefined;
      const counted = typeof counter.live === 'number' ? counter.live : 0;
      const live = await this.#countLiveCounted(clientId, userId);
      try {
        const output = await this.#documents.send(
          new UpdateCommand({
            TableName: this.#containerTable,
            Key: { containerId: key },
            UpdateExpression: 'SET live = :live REMOVE dueKey, dueAt',
            ConditionExpression:
              '(attribute_not_exists(live) OR live = :counted) AND changedAt = :changedAt',
            ExpressionAttributeValues: {
              ':live': live,
              ':counted': counted,
              ':changedAt': changedAt,
            },
            ReturnConsumedCapacity: 'TOTAL',
          }),
        );
        this.#record('put', output.ConsumedCapacity);
      } catch (error) {
        if (error instanceof Error && error.name === 'ConditionalCheckFailedException') continue;
        throw toDomainError(error, { operation: 'UpdateItem', table: this.#containerTable });
      }
      return live === counted
        ? undefined
        : { clientId, ...(userId === undefined ? {} : { userId }), from: counted, to: live };
    }
    return undefined;
  }

  async #postponeQuotaCheck(key: string, changedAt: string): Promise<void> {
    try {
      const output = await this.#documents.send(
        new UpdateCommand({
          TableName: this.#containerTable,
          Key: { containerId: key },
          UpdateExpression: 'SET dueAt = :changedAt',
          ConditionExpression: 'changedAt = :changedAt AND dueKey = :quotaDue',
          ExpressionAttributeValues: { ':changedAt': changedAt, ':quotaDue': QUOTA_DUE_KEY },
          ReturnConsumedCapacity: 'TOTAL',
        }),
      );
      this.#record('put', output.ConsumedCapacity);
    } catch (error) {
      // Changed again meanwhile: it is due from that change, which is later still.
      if (error instanceof Error && error.name === 'ConditionalCheckFailedException') return;
      throw toDomainError(error, { operation: 'UpdateItem', table: this.#containerTable });
    }
  }

  /** Live generations that were counted (`quotaCounted`) of a client, or of one of its users. */
  async #countLiveCounted(clientId: string, userId: string | undefined): Promise<number> {
    const { items } = await this.#readPages(
      {
        kind: 'query',
        input: {
          TableName: this.#containerTable,
          IndexName: CONTAINER_INDEXES.byClient,
          KeyConditionExpression: 'clientId = :client',
          FilterExpression: `quotaCounted = :yes AND #status IN (:starting, :running, :terminating)${userId === undefined ? '' : ' AND userId = :user'}`,
          ProjectionExpression: 'containerId',
          ExpressionAttributeNames: { '#status': 'status' },
          ExpressionAttributeValues: {
            ':client': clientId,
            ':yes': true,
            ':starting': 'starting',
            ':running': 'running',
            ':terminating': 'terminating',
            ...(userId === undefined ? {} : { ':user': userId }),
          },
        },
      },
      Number.POSITIVE_INFINITY,
    );
    return items.length;
  }

  /** Makes a counter that refused a start due at once (best effort: the refusal stands anyway). */
  async #markQuotaCounterDue(owner: { clientId: string; userId?: string } | undefined) {
    if (!owner) return;
    const keys = quotaKeys(owner.clientId, owner.userId ?? '', '');
    try {
      await this.#documents.send(
        new UpdateCommand({
          TableName: this.#containerTable,
          Key: { containerId: owner.userId === undefined ? keys.client : keys.user },
          UpdateExpression: 'SET dueKey = :quotaDue, dueAt = :epoch',
          ConditionExpression: 'attribute_exists(live)',
          ExpressionAttributeValues: { ':quotaDue': QUOTA_DUE_KEY, ':epoch': EPOCH },
        }),
      );
    } catch {
      // Best effort: the refusal is answered anyway, and the counter's next change schedules it.
    }
  }

  async isKnownProject(clientId: string, projectId: string): Promise<boolean> {
    return (
      (await this.#get(this.#containerTable, {
        containerId: quotaKeys(clientId, '', projectId).project,
      })) !== undefined
    );
  }

  /**
   * The writes and the quota counters in ONE transaction: a full counter cancels it all, and
   * is reported as the quota it broke (docs/design.md, "Lifecycle policies and quotas").
   */
  async #writeWithQuota(
    puts: ConditionalPut[],
    quota: NonNullable<StoreChange['quota']>,
  ): Promise<void> {
    const table = this.#containerTable;
    const items: NonNullable<
      ConstructorParameters<typeof TransactWriteCommand>[0]['TransactItems']
    > = puts.map((put) => ({ Put: put }));
    const quotaAt = new Map<number, string>();
    const now = this.#clock.now().toISOString();
    const counter = (
      key: string,
      attribute: string,
      delta: number,
      max: number | null,
      name: string,
      /** A `live` counter: scheduled for the sweep's recount (repairQuotaCounters). */
      owner?: { clientId: string; userId?: string },
    ) => {
      if (max !== null) quotaAt.set(items.length, `${name} (${max})`);
      items.push({
        Update: {
          TableName: table,
          Key: { containerId: key },
          UpdateExpression: owner ? `ADD #n :delta SET ${QUOTA_CHECK_SET}` : 'ADD #n :delta',
          ExpressionAttributeNames: { '#n': attribute },
          ExpressionAttributeValues: {
            ':delta': delta,
            ...(max !== null ? { ':max': max } : {}),
            ...(owner ? quotaCheckValues(owner, now) : {}),
          },
          ...(max !== null ? { ConditionExpression: 'attribute_not_exists(#n) OR #n < :max' } : {}),
        },
      });
    };
    const { charge, release } = quota;
    if (charge) {
      const keys = quotaKeys(charge.clientId, charge.userId, charge.projectId);
      const client = { clientId: charge.clientId };
      const user = { clientId: charge.clientId, userId: charge.userId };
      counter(
        keys.client,
        'live',
        1,
        charge.maxLiveContainersPerClient,
        'maxLiveContainersPerClient',
        client,
      );
      counter(
        keys.user,
        'live',
        1,
        charge.maxLiveContainersPerUser,
        'maxLiveContainersPerUser',
        user,
      );
      if (charge.newProject) {
        items.push({
          Put: {
            TableName: table,
            Item: { containerId: keys.project, quotaProjectId: charge.projectId },
            ConditionExpression: 'attribute_not_exists(containerId)',
          },
        });
        counter(keys.projects, 'projects', 1, charge.newProjectLimit, 'maxProjectsPerClient');
      }
    }
    if (release) {
      const keys = quotaKeys(release.clientId, release.userId, '');
      counter(keys.client, 'live', -1, null, '', { clientId: release.clientId });
      counter(keys.user, 'live', -1, null, '', {
        clientId: release.clientId,
        userId: release.userId,
      });
    }
    try {
      await this.#documents.send(new TransactWriteCommand({ TransactItems: items }));
    } catch (error) {
      const reasons = (error as { CancellationReasons?: { Code?: string }[] }).CancellationReasons;
      const broken = (reasons ?? [])
        .map((reason, index) =>
          reason.Code === 'ConditionalCheckFailed' ? quotaAt.get(index) : undefined,
        )
        .find((name) => name !== undefined);
      if (broken && charge) {
        // A full counter may be a drifted one: the next sweep recounts it.
        await this.#markQuotaCounterDue(
          broken.startsWith('maxLiveContainersPerUser')
            ? { clientId: charge.clientId, userId: charge.userId }
            : broken.startsWith('maxLiveContainersPerClient')
              ? { clientId: charge.clientId }
              : undefined,
        );
        throw new CapacityExceededError(`client ${charge.clientId} is at its quota ${broken}`, {
          field: broken.split(' ')[0],
        });
      }
      throw toDomainError(error, { operation: 'TransactWriteItems', table });
    }
  }

  async #put(puts: ConditionalPut[]): Promise<void> {
    const [only] = puts;
    if (only === undefined) return;
    const tables = [...new Set(puts.map((put) => put.TableName))];
    if (puts.length === 1) {
      try {
        const output = await this.#documents.send(
          new PutCommand({ ...only, ReturnConsumedCapacity: 'TOTAL' }),
        );
        this.#record('put', output.ConsumedCapacity);
      } catch (error) {
        if (retriedConditionFailure(error) && (await this.#holds(only))) return;
        throw toDomainError(error, { operation: 'PutItem', table: tables });
      }
      return;
    }
    try {
      // The SDK fills ClientRequestToken, so its own retries of a transaction that did
      // commit are answered as success instead of failing their conditions.
      const output = await this.#documents.send(
        new TransactWriteCommand({
          TransactItems: puts.map((put) => ({ Put: put })),
          ReturnConsumedCapacity: 'TOTAL',
        }),
      );
      for (const consumed of output.ConsumedCapacity ?? [])
        this.#record('transact-write', consumed);
    } catch (error) {
      throw toDomainError(error, { operation: 'TransactWriteItems', table: tables });
    }
  }

  async getPolicy(clientId: string, projectId: string | null): Promise<StoredPolicy | undefined> {
    const item = await this.#get(this.#containerTable, {
      containerId: policyKey(clientId, projectId ?? undefined),
    });
    // A deleted policy is kept as a tombstone (PutItem only: no DeleteItem grant for a policy).
    return item === undefined || item.deleted === true ? undefined : fromPolicyItem(item);
  }

  async getPolicies(
    clientId: string,
    projectId: string,
  ): Promise<{ client: Policy | undefined; project: Policy | undefined }> {
    const [client, project] = await Promise.all([
      this.getPolicy(clientId, null),
      this.getPolicy(clientId, projectId),
    ]);
    return { client: client?.policy, project: project?.policy };
  }

  async putPolicy(stored: StoredPolicy): Promise<void> {
    try {
      const output = await this.#documents.send(
        new PutCommand({
          TableName: this.#containerTable,
          Item: toPolicyItem(stored),
          ReturnConsumedCapacity: 'TOTAL',
        }),
      );
      this.#record('put', output.ConsumedCapacity);
    } catch (error) {
      throw toDomainError(error, { operation: 'PutItem', table: this.#containerTable });
    }
  }

  async deletePolicy(clientId: string, projectId: string | null): Promise<boolean> {
    try {
      const output = await this.#documents.send(
        new PutCommand({
          TableName: this.#containerTable,
          Item: {
            ...toPolicyItem({
              clientId,
              projectId,
              policy: {},
              updatedAt: this.#clock.now().toISOString(),
            }),
            deleted: true,
          },
          ReturnValues: 'ALL_OLD',
          ReturnConsumedCapacity: 'TOTAL',
        }),
      );
      this.#record('put', output.ConsumedCapacity);
      const old = output.Attributes;
      return old !== undefined && old.deleted !== true;
    } catch (error) {
      throw toDomainError(error, { operation: 'PutItem', table: this.#containerTable });
    }
  }

  async readPool(
    size: number,
  ): Promise<{ slot: PoolSlotRecord | undefined; member: PoolMemberRecord | undefined }[]> {
    const slots = await Promise.all(
      Array.from({ length: size }, (_, slot) =>
        this.#get(this.#containerTable, { containerId: poolSlotKey(slot) }),
      ),
    );
    return Promise.all(
      slots.map(async (item) => {
        const slot = item === undefined ? undefined : fromSlotItem(item);
        const member = slot ? await this.getPoolMember(slot.slot, slot.generation) : undefined;
        return { slot, member };
      }),
    );
  }

  async getPoolMember(slot: number, generation: number): Promise<PoolMemberRecord | undefined> {
    const item = await this.#get(this.#containerTable, {
      containerId: poolMemberKey(slot, generation),
    });
    return item === undefined ? undefined : fromMemberItem(item);
  }

  /**
   * Slots, members and containers in one transaction (the claim: a member, its container and
   * the container's quota counters).
   */
  async writePool(change: {
    slots?: PoolSlotWrite[];
    members?: PoolMemberWrite[];
    containers?: ContainerWrite[];
    quota?: StoreChange['quota'];
  }): Promise<void> {
    const now = this.#clock.now();
    const puts: ConditionalPut[] = [
      ...(change.slots ?? []).map((write) => ({
        TableName: this.#containerTable,
        Item: toSlotItem(write.record),
        ...versionCondition(write.expectVersion),
      })),
      ...(change.members ?? []).map((write) => ({
        TableName: this.#containerTable,
        Item: toMemberItem(write.record, now),
        ...versionCondition(write.expectVersion),
      })),
      ...(change.containers ?? []).map((write) => ({
        TableName: this.#containerTable,
        Item: toContainerItem(write.record, now),
        ...containerCondition(write),
      })),
    ];
    if (change.quota) {
      await this.#writeWithQuota(puts, change.quota);
      return;
    }
    await this.#put(puts);
  }

  async listContainers(
    filter: ContainerFilter,
    limit: number,
    cursor?: string,
  ): Promise<Page<ContainerRecord>> {
    assertLimit(limit);
    const plan = planContainerQuery(filter);
    const startKey = cursor === undefined ? undefined : decodeCursor(plan, cursor);
    // A plan of several partitions reads them in order; a cursor resumes in its key's one.
    const first = startKey === undefined ? 0 : partitionOf(plan, startKey);
    const items: Item[] = [];
    let lastKey: Record<string, unknown> | undefined;
    for (let position = first; position < plan.partitions.length; position += 1) {
      const partition = plan.partitions[position] as KeyCondition;
      const page = await this.#readPages(
        this.#containerRequest(plan, partition),
        limit - items.length,
        plan,
        position === first ? startKey : undefined,
      );
      items.push(...page.items);
      lastKey = page.lastKey;
      if (lastKey !== undefined) break;
      if (items.length >= limit) {
        // This partition ended with the page full: the next page starts after its last item
        // (an empty read there, then the next partition).
        const last = items[items.length - 1];
        if (position < plan.partitions.length - 1 && last) lastKey = keyOf(last, plan);
        break;
      }
    }
    return {
      items: items.map(fromContainerItem),
      nextCursor: lastKey === undefined ? null : encodeCursor(plan, lastKey),
    };
  }

  async listIdleContainers(idleSinceAtOrBefore: string, limit: number): Promise<ContainerRecord[]> {
    return this.#containersAtOrBefore(
      { index: CONTAINER_INDEXES.idle, partition: ['idleKey', IDLE_KEY], sort: 'idleSince' },
      idleSinceAtOrBefore,
      limit,
    );
  }

  async listDueContainers(atOrBefore: string, limit: number): Promise<ContainerRecord[]> {
    return this.#containersAtOrBefore(
      { index: CONTAINER_INDEXES.due, partition: ['dueKey', DUE_KEY], sort: 'dueAt' },
      atOrBefore,
      limit,
    );
  }

  /** The records of a sparse time index (one partition) whose time is at or before `before`. */
  async #containersAtOrBefore(
    of: { index: string; partition: [attribute: string, value: string]; sort: string },
    before: string,
    limit: number,
  ): Promise<ContainerRecord[]> {
    assertLimit(limit);
    const { items } = await this.#readPages(
      {
        kind: 'query',
        input: {
          TableName: this.#containerTable,
          IndexName: of.index,
          KeyConditionExpression: '#partition = :partition AND #sort <= :before',
          ExpressionAttributeNames: { '#partition': of.partition[0], '#sort': of.sort },
          ExpressionAttributeValues: { ':partition': of.partition[1], ':before': before },
        },
      },
      limit,
    );
    return items.map(fromContainerItem);
  }

  async listContainersByStatus(status: ContainerStatus, limit: number): Promise<ContainerRecord[]> {
    assertLimit(limit);
    const { items } = await this.#readPages(
      {
        kind: 'query',
        input: {
          TableName: this.#containerTable,
          IndexName: CONTAINER_INDEXES.byStatus,
          KeyConditionExpression: '#status = :status',
          ExpressionAttributeNames: { '#status': 'status' },
          ExpressionAttributeValues: { ':status': status },
        },
      },
      limit,
    );
    return items.map(fromContainerItem);
  }

  async containerGauges(statuses: readonly ContainerStatus[]): Promise<ContainerGauges> {
    const gauges: ContainerGauges = { byStatus: {}, runningBySessionCount: new Map() };
    for (const status of statuses) {
      // Running containers bring their session lists (only that attribute); every other status
      // is counted by DynamoDB itself (Select COUNT returns no item at all).
      const running = status === 'running';
      let count = 0;
      let exclusiveStartKey: Record<string, unknown> | undefined;
      do {
        let page: {
          Items?: Item[];
          Count?: number;
          LastEvaluatedKey?: Record<string, unknown>;
          ConsumedCapacity?: ConsumedCapacity;
        };
        try {
          page = await this.#documents.send(
            new QueryCommand({
              TableName: this.#containerTable,
              IndexName: CONTAINER_INDEXES.byStatus,
              KeyConditionExpression: '#status = :status',
              ExpressionAttributeNames: running
                ? { '#status': 'status', '#sessions': 'sessions' }
                : { '#status': 'status' },
              ExpressionAttributeValues: { ':status': status },
              ...(running ? { ProjectionExpression: '#sessions' } : { Select: 'COUNT' as const }),
              ...(exclusiveStartKey === undefined ? {} : { ExclusiveStartKey: exclusiveStartKey }),
              ReturnConsumedCapacity: 'TOTAL',
            }),
          );
        } catch (error) {
          throw toDomainError(error, {
            operation: `Query(${CONTAINER_INDEXES.byStatus})`,
            table: this.#containerTable,
          });
        }
        this.#record('query', page.ConsumedCapacity, CONTAINER_INDEXES.byStatus);
        count += page.Count ?? 0;
        for (const item of running ? (page.Items ?? []) : []) {
          const sessions = Array.isArray(item['sessions']) ? item['sessions'].length : 0;
          gauges.runningBySessionCount.set(
            sessions,
            (gauges.runningBySessionCount.get(sessions) ?? 0) + 1,
          );
        }
        exclusiveStartKey = page.LastEvaluatedKey;
      } while (exclusiveStartKey !== undefined);
      gauges.byStatus[status] = count;
    }
    return gauges;
  }

  async listSessionsByContainer(containerId: string): Promise<SessionRecord[]> {
    const { items } = await this.#readPages(
      {
        kind: 'query',
        input: {
          TableName: this.#sessionTable,
          IndexName: SESSION_INDEXES.byContainer,
          KeyConditionExpression: 'containerId = :containerId',
          ExpressionAttributeValues: { ':containerId': containerId },
        },
      },
      Number.POSITIVE_INFINITY,
    );
    return items.map(fromSessionItem);
  }

  async listSessionsWithPendingEvents(limit: number): Promise<SessionRecord[]> {
    assertLimit(limit);
    const { items } = await this.#readPages(
      {
        kind: 'query',
        input: {
          TableName: this.#sessionTable,
          IndexName: SESSION_INDEXES.active,
          KeyConditionExpression: 'activeKey = :pending',
          ExpressionAttributeValues: { ':pending': PENDING_KEY },
        },
      },
      limit,
    );
    return items.map(fromSessionItem);
  }

  async listStaleSessions(lastActivityAtOrBefore: string, limit: number): Promise<SessionRecord[]> {
    assertLimit(limit);
    const { items } = await this.#readPages(
      {
        kind: 'query',
        input: {
          TableName: this.#sessionTable,
          IndexName: SESSION_INDEXES.active,
          KeyConditionExpression: 'activeKey = :active AND lastActivityAt <= :before',
          ExpressionAttributeValues: { ':active': ACTIVE_KEY, ':before': lastActivityAtOrBefore },
        },
      },
      limit,
    );
    return items.map(fromSessionItem);
  }

  async recordCheckpoint(record: CheckpointRecord): Promise<boolean> {
    const { byCommit, inLog } = toCheckpointItems(record);
    try {
      const output = await this.#documents.send(
        new TransactWriteCommand({
          TransactItems: [
            {
              Put: {
                TableName: this.#sessionTable,
                Item: byCommit,
                ConditionExpression: 'attribute_not_exists(sessionId)',
              },
            },
            { Put: { TableName: this.#sessionTable, Item: inLog } },
          ],
          ReturnConsumedCapacity: 'TOTAL',
        }),
      );
      for (const consumed of output.ConsumedCapacity ?? [])
        this.#record('transact-write', consumed);
      return true;
    } catch (error) {
      const domain = toDomainError(error, {
        operation: 'TransactWriteItems',
        table: this.#sessionTable,
      });
      // Recorded before (a repeated announcement changes nothing), or a concurrent transaction
      // on the same items, which the caller's retry settles.
      if (
        domain instanceof StaleWriteError &&
        (await this.#get(this.#sessionTable, { sessionId: byCommit.sessionId })) !== undefined
      )
        return false;
      throw domain;
    }
  }

  async getCheckpoint(
    containerId: string,
    threadId: string,
    commit: string,
  ): Promise<CheckpointRecord | undefined> {
    const item = await this.#get(this.#sessionTable, {
      sessionId: checkpointKey(containerId, threadId, commit),
    });
    return item === undefined ? undefined : fromCheckpointItem(item);
  }

  async listCheckpoints(
    containerId: string,
    threadId: string,
    limit: number,
    cursor?: string,
  ): Promise<Page<CheckpointRecord>> {
    const partition = checkpointLogPartition(containerId, threadId);
    let startKey: Record<string, string> | undefined;
    if (cursor !== undefined) {
      let sortKey: unknown;
      try {
        sortKey = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
      } catch {
        sortKey = undefined;
      }
      if (typeof sortKey !== 'string' || !sortKey.startsWith(`${partition}/`)) {
        throw new InvalidArgumentError(
          'cursor is not valid for this list: it belongs to another thread or is not a cursor',
          'cursor',
        );
      }
      startKey = { threadId: partition, sessionId: sortKey };
    }
    try {
      const output = await this.#documents.send(
        new QueryCommand({
          TableName: this.#sessionTable,
          IndexName: SESSION_INDEXES.byThread,
          KeyConditionExpression: 'threadId = :partition',
          ExpressionAttributeValues: { ':partition': partition },
          ScanIndexForward: false,
          Limit: limit,
          ...(startKey ? { ExclusiveStartKey: startKey } : {}),
          ReturnConsumedCapacity: 'TOTAL',
        }),
      );
      this.#record('query', output.ConsumedCapacity);
      const items = (output.Items ?? []).map(fromCheckpointItem);
      const last: unknown = output.LastEvaluatedKey?.sessionId;
      return {
        items,
        nextCursor:
          typeof last === 'string' && items.length === limit
            ? Buffer.from(JSON.stringify(last), 'utf8').toString('base64url')
            : null,
      };
    } catch (error) {
      throw toDomainError(error, { operation: 'Query', table: this.#sessionTable });
    }
  }

  async ping(): Promise<void> {
    try {
      await this.#client.send(new DescribeTableCommand({ TableName: this.#containerTable }));
    } catch (error) {
      throw toDomainError(error, { operation: 'DescribeTable', table: this.#containerTable });
    }
  }

  /**
   * Whether the table holds exactly the item this put writes. A put's condition failing on
   * the SDK's second attempt may be the first attempt's own success whose response was lost
   * (a timeout, a reset connection): then the write is done, not lost to a competitor. A
   * competitor's item differs (its version, its times, its task), so only our own matches.
   */
  async #holds(put: ConditionalPut): Promise<boolean> {
    const key =
      put.TableName === this.#containerTable
        ? { containerId: put.Item.containerId }
        : { sessionId: put.Item.sessionId };
    const stored = await this.#get(put.TableName, key);
    return stored !== undefined && isDeepStrictEqual(stored, put.Item);
  }

  async #get(table: string, key: Item): Promise<Item | undefined> {
    try {
      const output = await this.#documents.send(
        new GetCommand({
          TableName: table,
          Key: key,
          ConsistentRead: true,
          ReturnConsumedCapacity: 'TOTAL',
        }),
      );
      this.#record('get', output.ConsumedCapacity);
      return output.Item;
    } catch (error) {
      throw toDomainError(error, { operation: 'GetItem', table });
    }
  }

  #containerRequest(plan: ContainerQueryPlan, partition: KeyCondition): ReadRequest {
    const names: Record<string, string> = {};
    const values: Record<string, unknown> = {};
    const term = (name: string, value: string, slot: string) => {
      names[`#${slot}`] = name;
      values[`:${slot}`] = value;
      return { name: `#${slot}`, value: `:${slot}` };
    };
    const filterExpression = plan.filters
      .map((condition, position) => {
        const { name, value } = term(condition.name, condition.value, `f${position}`);
        return `${name} = ${value}`;
      })
      .join(' AND ');
    const key = term(partition.name, partition.value, 'pk');
    let keyCondition = `${key.name} = ${key.value}`;
    if (plan.sort) {
      const sort = term(plan.sort.name, plan.sort.value, 'sk');
      keyCondition +=
        plan.sort.match === 'equals'
          ? ` AND ${sort.name} = ${sort.value}`
          : ` AND begins_with(${sort.name}, ${sort.value})`;
    }
    return {
      kind: 'query',
      input: {
        TableName: this.#containerTable,
        IndexName: plan.index,
        KeyConditionExpression: keyCondition,
        ...(filterExpression ? { FilterExpression: filterExpression } : {}),
        ExpressionAttributeNames: names,
        ExpressionAttributeValues: values,
      },
    };
  }

  /**
   * Reads pages until `limit` items or the end. Without a filter each page asks for exactly
   * what is still missing; with one it reads further and, when a page brings more than
   * needed, resumes after the last item kept (its key is rebuilt from the item itself).
   */
  async #readPages(
    request: ReadRequest,
    limit: number,
    plan?: ContainerQueryPlan,
    startKey?: Record<string, unknown>,
  ): Promise<{ items: Item[]; lastKey: Record<string, unknown> | undefined }> {
    const filtered = request.input.FilterExpression !== undefined;
    const items: Item[] = [];
    let exclusiveStartKey = startKey;
    const { TableName: table, IndexName: index } = request.input;
    for (;;) {
      const missing = limit - items.length;
      const pageLimit = Number.isFinite(missing)
        ? filtered
          ? Math.max(missing, MIN_FILTERED_PAGE)
          : missing
        : undefined;
      const input = {
        ...request.input,
        ...(pageLimit === undefined ? {} : { Limit: pageLimit }),
        ...(exclusiveStartKey === undefined ? {} : { ExclusiveStartKey: exclusiveStartKey }),
        ReturnConsumedCapacity: 'TOTAL' as const,
      };
      let page: {
        Items?: Item[];
        LastEvaluatedKey?: Record<string, unknown>;
        ConsumedCapacity?: ConsumedCapacity;
      };
      try {
        page = await this.#documents.send(new QueryCommand(input as QueryCommandInput));
      } catch (error) {
        throw toDomainError(error, {
          operation: `Query(${index ?? 'table'})`,
          table: table ?? '',
        });
      }
      this.#record(request.kind, page.ConsumedCapacity, index);
      const received = page.Items ?? [];
      if (received.length > missing) {
        const kept = received.slice(0, missing);
        items.push(...kept);
        const last = kept[kept.length - 1];
        return { items, lastKey: plan && last ? keyOf(last, plan) : page.LastEvaluatedKey };
      }
      items.push(...received);
      exclusiveStartKey = page.LastEvaluatedKey;
      if (exclusiveStartKey === undefined || items.length >= limit) {
        return { items, lastKey: exclusiveStartKey };
      }
    }
  }

  #record(
    operation: ConsumedCapacityDetail['operation'],
    consumed: ConsumedCapacity | undefined,
    index?: string,
  ): void {
    const units = consumed?.CapacityUnits;
    if (units === undefined) return;
    this.#consumedCapacityUnits += units;
    this.#onConsumedCapacity?.(units, { operation, table: consumed?.TableName ?? '', index });
  }
}

/** Every read is a Query: no role is granted dynamodb:Scan (infra/src/permissions.ts). */
interface ReadRequest {
  kind: 'query';
  input: Omit<QueryCommandInput, 'Limit' | 'ExclusiveStartKey'>;
}
