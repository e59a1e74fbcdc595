import Type, { type Static } from 'typebox';
import type { ContainerJson, ContainerRecord } from './model.ts';

export const EVENT_TYPES = [
  'container.created',
  'container.running',
  'container.idle',
  'container.expiring',
  'container.terminating',
  'container.stopped',
  'container.failed',
  'session.assigned',
  'session.released',
  'session.rejected',
  'session.expired',
  'session.ready',
  'session.checkpointed',
  'session.reverted',
  'command.rejected',
] as const;
export type EventType = (typeof EVENT_TYPES)[number];

export const EventSchema = Type.Object(
  {
    type: Type.Enum(EVENT_TYPES),
    eventId: Type.String({ minLength: 1 }),
    occurredAt: Type.String({ format: 'date-time' }),
    containerId: Type.Optional(Type.String()),
    sessionId: Type.Optional(Type.String()),
    commandId: Type.Optional(Type.String()),
    payload: Type.Record(Type.String(), Type.Unknown()),
  },
  { $id: 'Event' },
);
export type BerthEvent = Static<typeof EventSchema> & { type: EventType };

/**
 * Event ids are derived from what caused the event, never random: a handler that runs again
 * after a crash or a redelivery publishes the same id, so consumers can drop duplicates.
 */
export function eventIdFor(cause: string, type: EventType): string {
  return `${cause}/${type}`;
}

/** Session ids are the cause of their own events: a session is assigned and released once. */
export function sessionCause(sessionId: string): string {
  return `session/${sessionId}`;
}

export function containerCause(
  container: Pick<ContainerRecord, 'containerId' | 'generation'>,
): string {
  return `${container.containerId}#${container.generation}`;
}

export interface EventInput {
  type: EventType;
  cause: string;
  occurredAt: string;
  containerId?: string | null;
  sessionId?: string | null;
  commandId?: string | null;
  payload?: Record<string, unknown>;
}

export function makeEvent(input: EventInput): BerthEvent {
  return {
    type: input.type,
    eventId: eventIdFor(input.cause, input.type),
    occurredAt: input.occurredAt,
    ...(input.containerId ? { containerId: input.containerId } : {}),
    ...(input.sessionId ? { sessionId: input.sessionId } : {}),
    ...(input.commandId ? { commandId: input.commandId } : {}),
    payload: input.payload ?? {},
  };
}

/** `container.*` events carry the container as JSON in their payload. */
export function containerEvent(
  type: Extract<EventType, `container.${string}`>,
  container: ContainerRecord,
  json: ContainerJson,
  occurredAt: string,
  extra: { cause?: string; commandId?: string; payload?: Record<string, unknown> } = {},
): BerthEvent {
  return makeEvent({
    type,
    cause: extra.cause ?? containerCause(container),
    occurredAt,
    containerId: container.containerId,
    commandId: extra.commandId ?? null,
    payload: { ...extra.payload, container: json },
  });
}
