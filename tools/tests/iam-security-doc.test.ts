import {
  SECTION_END,
  SECTION_START,
  renderActionSection,
  replaceSection,
} from '../src/iam/security-doc.ts';
import type { IamReport } from '../src/iam/prove.ts';

const report: IamReport = {
  ok: true,
  denied: [],
  unmapped: [],
  unused: [
    {
      service: 'reaper',
      policy: 'BerthReaperStack/TaskRole/0',
      sid: 'StopClusterTasks',
      action: 'ecs:StopTask',
      resources: ['arn:aws:ecs:us-east-1:123456789012:task/berth/*'],
    },
  ],
  services: [
    {
      service: 'reaper',
      roleArn: 'arn:aws:iam::123456789012:role/reaper',
      calls: 3,
      checks: 3,
      actions: ['dynamodb:Query', 'sqs:DeleteQueue'],
      authorizations: [
        {
          service: 'reaper',
          action: 'sqs:DeleteQueue',
          resource: 'arn:aws:sqs:us-east-1:123456789012:berth-acme-web-ann-1-in',
          operations: ['sqs:DeleteQueue'],
          count: 1,
        },
        {
          service: 'reaper',
          action: 'sqs:DeleteQueue',
          resource: 'arn:aws:sqs:us-east-1:123456789012:berth-acme-web-bob-2-out',
          operations: ['sqs:DeleteQueue'],
          count: 1,
        },
        {
          service: 'reaper',
          action: 'sqs:ListQueueTags',
          resource: 'arn:aws:sqs:us-east-1:123456789012:discovery-invalidations-vm-4242',
          operations: ['sqs:ListQueueTags'],
          count: 1,
        },
        {
          service: 'reaper',
          action: 'dynamodb:Query',
          resource:
            'arn:aws:dynamodb:us-east-1:123456789012:table/berth-containers/index/status-index',
          operations: ['dynamodb:Query'],
          count: 1,
        },
      ],
    },
  ],
};

describe('the generated action list of docs/security.md', () => {
  it('lists each action once with generic resources, and what was granted but unused', () => {
    const section = renderActionSection(report);
    expect(section).toContain(
      '| `sqs:DeleteQueue` | `arn:aws:sqs:us-east-1:<account>:berth-<container queue>` | sqs:DeleteQueue |',
    );
    expect(section).toContain(
      '| `dynamodb:Query` | `arn:aws:dynamodb:us-east-1:<account>:table/berth-containers/index/status-index` | dynamodb:Query |',
    );
    expect(section).toContain(
      '| `sqs:ListQueueTags` | `arn:aws:sqs:us-east-1:<account>:discovery-invalidations-<replica>` | sqs:ListQueueTags |',
    );
    expect(section).toContain('`ecs:StopTask` (StopClusterTasks)');
    expect(section).not.toMatch(/123456789012/);
    expect(section.startsWith(SECTION_START) && section.endsWith(SECTION_END)).toBe(true);
  });

  it('replaces only the text between the markers, and appends the section when there is none', () => {
    const document = `# t\n\nbefore\n\n${SECTION_START}\nold\n${SECTION_END}\n\nafter\n`;
    expect(replaceSection(document, `${SECTION_START}\nnew\n${SECTION_END}`)).toBe(
      `# t\n\nbefore\n\n${SECTION_START}\nnew\n${SECTION_END}\n\nafter\n`,
    );
    expect(replaceSection('# t\n', `${SECTION_START}\nnew\n${SECTION_END}`)).toBe(
      `# t\n\n${SECTION_START}\nnew\n${SECTION_END}\n`,
    );
  });
});
