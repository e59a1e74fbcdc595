import { InvalidArgumentError } from './errors.ts';

/** `clientId`, `projectId`, `userId`: DNS-label-like, so a dot can never occur inside one. */
export const ID_PART_PATTERN = '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$';
/** `sessionId`, `threadId`. */
export const OPAQUE_ID_PATTERN = '^[A-Za-z0-9._:-]{1,128}$';
export const CONTAINER_ID_PATTERN =
  '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$';

const ID_PART = new RegExp(ID_PART_PATTERN);
const OPAQUE_ID = new RegExp(OPAQUE_ID_PATTERN);

export interface ContainerKey {
  clientId: string;
  projectId: string;
  userId: string;
}

export type IdPartField = keyof ContainerKey;

export function isIdPart(value: unknown): value is string {
  return typeof value === 'string' && ID_PART.test(value);
}

export function isOpaqueId(value: unknown): value is string {
  return typeof value === 'string' && OPAQUE_ID.test(value);
}

function describe(value: unknown): string {
  if (typeof value !== 'string') return `a ${value === null ? 'null' : typeof value}`;
  if (value.length === 0) return 'empty';
  return value.length > 63 ? `${value.length} characters long` : `"${value}"`;
}

export function assertIdPart(field: string, value: unknown): string {
  if (!isIdPart(value)) {
    throw new InvalidArgumentError(
      `${field} must be 1-63 characters of lower-case letters, digits and "-", starting and ending with a letter or digit; got ${describe(value)}`,
      field,
    );
  }
  return value;
}

export function assertOpaqueId(field: string, value: unknown): string {
  if (!isOpaqueId(value)) {
    throw new InvalidArgumentError(
      `${field} must be 1-128 characters of letters, digits, ".", "_", ":" and "-"; got ${describe(value)}`,
      field,
    );
  }
  return value;
}

export function assertContainerKey(input: {
  clientId?: unknown;
  projectId?: unknown;
  userId?: unknown;
}): ContainerKey {
  return {
    clientId: assertIdPart('clientId', input.clientId),
    projectId: assertIdPart('projectId', input.projectId),
    userId: assertIdPart('userId', input.userId),
  };
}

/**
 * `clientId.projectId.userId`. Injective because no part may contain a dot, unlike the
 * seed's `clientId-projectId-userId` where `a-b`+`c` and `a`+`b-c` collide.
 */
export function containerIdOf(key: ContainerKey): string {
  return `${key.clientId}.${key.projectId}.${key.userId}`;
}

export function parseContainerId(containerId: unknown, field = 'containerId'): ContainerKey {
  if (typeof containerId !== 'string') {
    throw new InvalidArgumentError(`${field} must be a string clientId.projectId.userId`, field);
  }
  const parts = containerId.split('.');
  if (parts.length !== 3 || !parts.every((part) => ID_PART.test(part))) {
    throw new InvalidArgumentError(
      `${field} must be clientId.projectId.userId, three valid ids joined by dots; got ${describe(containerId)}`,
      field,
    );
  }
  const [clientId, projectId, userId] = parts as [string, string, string];
  return { clientId, projectId, userId };
}

/**
 * A threadId as a single git ref component and directory name. `:` is not allowed in refs,
 * and a component may not start or end with `.`, contain `..` or end in `.lock`; those
 * characters are percent-encoded (`%` itself never occurs in a threadId), so the mapping
 * stays injective and readable for ordinary ids.
 */
export function threadRefName(threadId: string): string {
  let encoded = threadId.replaceAll(':', '%3A');
  encoded = encoded.replace(/\.(?=\.)/g, '%2E');
  if (encoded.startsWith('.')) encoded = `%2E${encoded.slice(1)}`;
  if (encoded.endsWith('.')) encoded = `${encoded.slice(0, -1)}%2E`;
  if (encoded.endsWith('.lock')) encoded = `${encoded.slice(0, -5)}%2Elock`;
  return encoded;
}

/** A thread's branch belongs to its user: `thread/<userId>/<threadRef>`. */
export function threadBranch(userId: string, threadId: string): string {
  return `thread/${userId}/${threadRefName(threadId)}`;
}

/**
 * The project-wide branch threads had before they belonged to their user. It is read once,
 * when a user's thread branch does not exist yet, and never written again.
 */
export function legacyThreadBranch(threadId: string): string {
  return `thread/${threadRefName(threadId)}`;
}

/** Worktrees live inside the workspace, under a directory the checkout itself ignores. */
export const WORKTREES_DIR = '.berth/worktrees';

export function worktreePathFor(workspacePath: string, threadId: string): string {
  return `${workspacePath.replace(/\/+$/, '')}/${WORKTREES_DIR}/${threadRefName(threadId)}`;
}
