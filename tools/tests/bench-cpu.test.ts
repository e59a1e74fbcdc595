import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { cpuPerOperation, cpuSnapshot, processName } from '../src/bench/cpu.ts';

describe('bench CPU by process', () => {
  it('names the stack processes by what they are', () => {
    expect(processName('/x/node_modules/node/bin/node /x/apps/session/src/main.ts')).toBe(
      'session',
    );
    expect(processName('java -Djava.library.path=/l -jar /l/DynamoDBLocal.jar -port 1')).toBe(
      'dynamodb-local',
    );
    expect(processName('/x/node /x/libs/testing/src/fauxqs-main.ts')).toBe('fauxqs');
    expect(processName('/usr/bin/git worktree add')).toBe('git');
  });

  it('sums CPU per operation by name, counting a process that started in between from zero', () => {
    const before = { processes: new Map([[1, { name: 'session', cpuMs: 100 }]]) };
    const after = {
      processes: new Map([
        [1, { name: 'session', cpuMs: 300 }],
        [2, { name: 'workspace-agent', cpuMs: 50 }],
        [3, { name: 'workspace-agent', cpuMs: 50 }],
      ]),
    };
    expect(cpuPerOperation(before, after, 10)).toEqual({
      operations: 10,
      total: 30,
      byProcess: { session: 20, 'workspace-agent': 10 },
    });
  });

  it("finds a busy child under its parent in /proc and charges it the child's CPU time", async () => {
    const busy = spawn(process.execPath, [
      '-e',
      // 300 ms of its own CPU time, however busy the machine (a wall-clock loop would not be).
      // It stays up afterwards: an ended process has no command line left to be named by.
      'while (process.cpuUsage().user < 300_000); process.stdout.write("done"); setInterval(() => {}, 1000)',
    ]);
    const before = cpuSnapshot(process.pid);
    expect(before.processes.has(busy.pid as number)).toBe(true);
    const [data] = (await once(busy.stdout, 'data')) as [Buffer];
    expect(data.toString()).toBe('done');
    const after = cpuSnapshot(process.pid);
    busy.kill();
    await once(busy, 'exit');
    const cpu = cpuPerOperation(before, after, 1);
    expect(cpu.byProcess.node).toBeGreaterThan(100);
  });
});
