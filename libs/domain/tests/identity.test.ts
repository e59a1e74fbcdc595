import fc from 'fast-check';
import { containerIdOf, parseContainerId, assertContainerKey, InvalidArgumentError } from '@berth/domain';

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
