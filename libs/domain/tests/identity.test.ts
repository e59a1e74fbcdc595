import fc from 'fast-check';
import {
  InvalidArgumentError,
  OPAQUE_ID_PATTERN,
  WORKTREES_DIR,
  assertContainerKey,
  assertIdPart,
  assertOpaqueId,
  containerIdOf,
  isOpaqueId,
  parseContainerId,
  threadBranch,
  legacyThreadBranch,
  threadRefName,
  worktreePathFor,
} from '../src/index.ts';

const idPart = fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/);

describe('containerIdOf', () => {
  it('joins the parts with dots', () => {
    expect(containerIdOf({ clientId: 'ameliastamps', projectId: 'website', userId: 'john' })).toBe(
      'ameliastamps.website.john',
    );
  });

  it('is injective: parsing the id gives back the triple', () => {
    fc.assert(
      fc.property(idPart, idPart, idPart, (clientId, projectId, userId) => {
        const key = { clientId, projectId, userId };
        expect(parseContainerId(containerIdOf(key))).toEqual(key);
      }),
    );
  });

  it('keeps apart the triples that the dash form confuses', () => {
    const a = containerIdOf({ clientId: 'a-b', projectId: 'c', userId: 'u' });
    const b = containerIdOf({ clientId: 'a', projectId: 'b-c', userId: 'u' });
    expect(a).not.toBe(b);
  });
});

describe('assertContainerKey', () => {
  it.each([
    ['clientId', { clientId: 'A', projectId: 'p', userId: 'u' }],
    ['projectId', { clientId: 'c', projectId: '-p', userId: 'u' }],
    ['userId', { clientId: 'c', projectId: 'p', userId: 'x'.repeat(64) }],
    ['userId', { clientId: 'c', projectId: 'p' }],
    ['clientId', { clientId: 'a.b', projectId: 'p', userId: 'u' }],
  ])('names %s when it is invalid', (field, input) => {
    expect(() => assertContainerKey(input)).toThrow(InvalidArgumentError);
    try {
      assertContainerKey(input);
    } catch (error) {
      expect((error as InvalidArgumentError).field).toBe(field);
    }
  });
});

describe('parseContainerId', () => {
  it.each(['a.b', 'a.b.c.d', 'A.b.c', 'a..c', 'a.b.c-', ''])(
    'refuses %j, naming the field',
    (containerId) => {
      // Prepare
      let caught: unknown;

      // Act
      try {
        parseContainerId(containerId, 'payload.containerId');
      } catch (error) {
        caught = error;
      }

      // Assess
      expect(caught).toBeInstanceOf(InvalidArgumentError);
      expect((caught as InvalidArgumentError).field).toBe('payload.containerId');
    },
  );

  it('refuses a value that is not a string', () => {
    expect(() => parseContainerId(42)).toThrow(InvalidArgumentError);
  });
});

describe('assertIdPart and assertOpaqueId', () => {
  it.each(['a', 'a-b', '0', 'x'.repeat(63)])('accepts the id part %j', (value) => {
    expect(assertIdPart('userId', value)).toBe(value);
  });

  it.each(['', '-a', 'a-', 'a_b', 'a.b', 'Ab', 'x'.repeat(64)])(
    'refuses the id part %j',
    (value) => {
      expect(() => assertIdPart('userId', value)).toThrow(
        expect.objectContaining({ field: 'userId' }) as Error,
      );
    },
  );

  it.each(['s', 'slack:C01:1700000000.123', 'A_b-c.d', 'x'.repeat(128)])(
    'accepts the opaque id %j',
    (value) => {
      expect(assertOpaqueId('sessionId', value)).toBe(value);
    },
  );

  it.each(['', 'a b', 'a/b', 'a%b', 'x'.repeat(129)])('refuses the opaque id %j', (value) => {
    expect(isOpaqueId(value)).toBe(false);
    expect(() => assertOpaqueId('sessionId', value)).toThrow(
      expect.objectContaining({ field: 'sessionId' }) as Error,
    );
  });
});

/**
 * The rules of `git check-ref-format` (refs.c: check_refname_component and the whole-name
 * rules). The domain may not spawn processes, so the rules are written out; they were checked
 * against git itself on the edge cases below.
 */
function isValidGitRefName(ref: string): boolean {
  if (ref === '@' || ref.startsWith('/') || ref.endsWith('/') || ref.endsWith('.')) return false;
  if (ref.includes('@{') || ref.includes('..') || ref.includes('//')) return false;
  // eslint-disable-next-line no-control-regex -- control characters are exactly what git refuses
  if (/[\x00-\x20\x7f~^:?*[\\]/.test(ref)) return false;
  const components = ref.split('/');
  if (components.length < 2) return false;
  return components.every((c) => c.length > 0 && !c.startsWith('.') && !c.endsWith('.lock'));
}

/**
 * threadIds matching the contract pattern: any at all, and ones built from the fragments
 * git cares about (dots, `.lock`, colons) so that the edge cases come up often.
 */
const threadId = fc.oneof(
  fc.stringMatching(new RegExp(OPAQUE_ID_PATTERN)),
  fc
    .array(fc.constantFrom('.', '..', '.lock', 'lock', ':', '-', '_', 'a', 'Z9'), {
      minLength: 1,
      maxLength: 40,
    })
    .map((parts) => parts.join('').slice(0, 128)),
);

const decodeRefName = (name: string) => name.replaceAll('%3A', ':').replaceAll('%2E', '.');

describe('the git rules used to check thread refs', () => {
  it.each([
    ['thread/a', true],
    ['thread/a_b-c.d', true],
    ['thread/a%3Ab', true],
    ['thread/-a', true],
    ['thread/a.loc', true],
    ['thread/.a', false],
    ['thread/a.', false],
    ['thread/a..b', false],
    ['thread/a.lock', false],
    ['thread/a:b', false],
    ['thread/a@{b', false],
    ['thread//a', false],
    ['thread/a b', false],
    ['thread', false],
  ])('judge %j as git does (%s)', (ref, valid) => {
    expect(isValidGitRefName(ref)).toBe(valid);
  });
});

describe('threadRefName and threadBranch', () => {
  it('keeps ordinary ids readable', () => {
    expect(threadBranch('john', 'thread-42')).toBe('thread/john/thread-42');
    expect(legacyThreadBranch('thread-42')).toBe('thread/thread-42');
    expect(threadRefName('slack:C01')).toBe('slack%3AC01');
  });

  it.each([
    '.',
    '..',
    '...',
    '.hidden',
    'end.',
    'a..b',
    'x.lock',
    'x..lock',
    ':',
    'a:b:c',
    '.lock',
  ])('makes a valid branch of the awkward id %j', (id) => {
    expect(isValidGitRefName(threadBranch('john', id))).toBe(true);
    expect(isValidGitRefName(`refs/heads/${threadBranch('john', id)}`)).toBe(true);
  });

  it('gives a valid git ref for every threadId of the contract', () => {
    fc.assert(
      fc.property(threadId, (id) => {
        expect(isValidGitRefName(threadBranch('john', id))).toBe(true);
        expect(isValidGitRefName(`refs/heads/${threadBranch('john', id)}`)).toBe(true);
        expect(threadRefName(id)).not.toContain('/');
      }),
      { numRuns: 1000 },
    );
  });

  it('is injective: the ref name decodes back to the threadId', () => {
    fc.assert(
      fc.property(threadId, (id) => {
        expect(decodeRefName(threadRefName(id))).toBe(id);
      }),
      { numRuns: 1000 },
    );
  });

  it('is injective: two different threadIds never share a branch', () => {
    fc.assert(
      fc.property(threadId, threadId, (a, b) => {
        fc.pre(a !== b);
        expect(threadBranch('john', a)).not.toBe(threadBranch('john', b));
      }),
      { numRuns: 1000 },
    );
  });
});

describe('worktreePathFor', () => {
  it('puts each thread in its own directory under the worktrees directory', () => {
    expect(worktreePathFor('/workspace/', 'a:b')).toBe(`/workspace/${WORKTREES_DIR}/a%3Ab`);
  });
});
