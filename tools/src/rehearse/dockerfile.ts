/**
 * What an image built from a Dockerfile runs by default: the final stage's WORKDIR, ENV,
 * ENTRYPOINT and CMD. Only the exec (JSON) forms are read: a shell-form command would run
 * through /bin/sh in the image, which the rehearsal does not imitate.
 */

export interface ImageDefaults {
  workingDirectory: string;
  environment: Record<string, string>;
  entryPoint: string[];
  command: string[];
}

export class DockerfileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DockerfileError';
  }
}

/** Instructions with their continuation lines joined; comments and blank lines dropped. */
function instructions(text: string): { keyword: string; argument: string }[] {
  const joined = text.replace(/\\\r?\n/g, ' ');
  return joined.split(/\r?\n/).flatMap((line) => {
    const trimmed = line.trim();
    if (trimmed === '' || trimmed.startsWith('#')) return [];
    const match = /^(\S+)\s*(.*)$/.exec(trimmed);
    return match ? [{ keyword: (match[1] ?? '').toUpperCase(), argument: match[2] ?? '' }] : [];
  });
}

function execForm(argument: string, keyword: string, file: string): string[] {
  try {
    const parsed: unknown = JSON.parse(argument);
    if (Array.isArray(parsed) && parsed.every((part) => typeof part === 'string')) return parsed;
  } catch {
    // fall through to the error below
  }
  throw new DockerfileError(
    `${file}: ${keyword} ${argument} is not in exec form (a JSON array of strings)`,
  );
}

function environmentOf(argument: string): Record<string, string> {
  const env: Record<string, string> = {};
  const pairs = argument.match(/(?:[^\s"]+|"[^"]*")+/g) ?? [];
  if (pairs.length >= 1 && !(pairs[0] ?? '').includes('=')) {
    // The legacy `ENV NAME value` form.
    const [name, ...rest] = argument.split(/\s+/);
    if (name) env[name] = rest.join(' ');
    return env;
  }
  for (const pair of pairs) {
    const index = pair.indexOf('=');
    if (index <= 0) continue;
    env[pair.slice(0, index)] = pair.slice(index + 1).replace(/^"(.*)"$/, '$1');
  }
  return env;
}

/**
 * The defaults of the stage `target` (the last stage when absent). A stage built `FROM` an
 * earlier stage inherits its WORKDIR, ENV and command; one built from an image starts afresh
 * (the base image's own defaults are the machine's stand-ins: PATH, HOME).
 */
export function imageDefaults(text: string, file: string, target?: string): ImageDefaults {
  const stages = new Map<string, ImageDefaults>();
  let defaults: ImageDefaults | undefined;
  let name: string | undefined;
  const fresh = (): ImageDefaults => ({
    workingDirectory: '/',
    environment: {},
    entryPoint: [],
    command: [],
  });
  for (const { keyword, argument } of instructions(text)) {
    if (keyword === 'FROM') {
      const match = /^(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?$/i.exec(argument);
      const parent = stages.get((match?.[1] ?? '').toLowerCase());
      defaults = parent
        ? {
            ...parent,
            environment: { ...parent.environment },
            entryPoint: [...parent.entryPoint],
            command: [...parent.command],
          }
        : fresh();
      name = match?.[2]?.toLowerCase();
      if (name !== undefined) stages.set(name, defaults);
      continue;
    }
    if (defaults === undefined) continue;
    if (keyword === 'WORKDIR') {
      defaults.workingDirectory = argument.startsWith('/')
        ? argument
        : `${defaults.workingDirectory.replace(/\/$/, '')}/${argument}`;
    } else if (keyword === 'ENV') {
      Object.assign(defaults.environment, environmentOf(argument));
    } else if (keyword === 'CMD') {
      defaults.command = execForm(argument, keyword, file);
    } else if (keyword === 'ENTRYPOINT') {
      defaults.entryPoint = execForm(argument, keyword, file);
      defaults.command = [];
    }
  }
  if (target !== undefined) {
    const stage = stages.get(target.toLowerCase());
    if (stage === undefined) throw new DockerfileError(`${file}: no stage named ${target}`);
    return stage;
  }
  if (defaults === undefined) throw new DockerfileError(`${file}: no FROM instruction`);
  return defaults;
}
