import { inspect } from 'node:util';
import { InvalidArgumentError } from '@berth/domain';

/**
 * The variables ECS injects from the `berth/git-credentials` secret (its `username` and
 * `password` fields). Set both, or neither: without them git runs with no credentials at all.
 */
export const GIT_USERNAME_VARIABLE = 'BERTH_GIT_USERNAME';
export const GIT_PASSWORD_VARIABLE = 'BERTH_GIT_PASSWORD';

/** Every secret this process has read: redactCredentials removes them from any text. */
const knownSecrets = new Set<string>();

/**
 * HTTPS credentials for the project remote. The password stays in a private field: logging,
 * inspecting or serializing the object shows `***`.
 */
export class GitCredentials {
  readonly username: string;
  readonly #password: string;

  constructor(username: string, password: string) {
    this.username = username;
    this.#password = password;
    knownSecrets.add(password);
  }

  /**
   * What git needs, per command and never written to `.git/config`: the credential helper,
   * reset first so no system helper answers, then scoped to the remote's origin, reading the
   * secret from the environment of the git process only (it is in no argument and no URL).
   * An `ssh:` or local remote gets nothing: the credentials are for HTTP(S) remotes.
   */
  gitOptions(repoUrl: string): { config: string[]; env: Record<string, string> } | undefined {
    const url = URL.parse(repoUrl);
    if (url === null || (url.protocol !== 'https:' && url.protocol !== 'http:')) return undefined;
    return {
      config: ['credential.helper=', `credential.${url.origin}.helper=${CREDENTIAL_HELPER}`],
      env: { [GIT_USERNAME_VARIABLE]: this.username, [GIT_PASSWORD_VARIABLE]: this.#password },
    };
  }

  toJSON(): Record<string, string> {
    return { username: this.username, password: '***' };
  }

  [inspect.custom](): string {
    return `GitCredentials { username: ${JSON.stringify(this.username)}, password: '***' }`;
  }
}

/**
 * git's credential protocol (`git help credential`): answers `get` with the username and
 * password from the environment, ignores `store` and `erase`, and reads its input so git never
 * writes to a closed pipe.
 */
const CREDENTIAL_HELPER = `!f() { cat >/dev/null; test "$1" != get || printf 'username=%s\\npassword=%s\\n' "$${GIT_USERNAME_VARIABLE}" "$${GIT_PASSWORD_VARIABLE}"; }; f`;

/**
 * Reads the credentials from the environment and removes them from it, so that no child
 * process (a workload, a hook) inherits them; GitWorkspace hands them to git alone.
 */
export function takeGitCredentials(
  env: Record<string, string | undefined>,
): GitCredentials | undefined {
  const username = env[GIT_USERNAME_VARIABLE];
  const password = env[GIT_PASSWORD_VARIABLE];
  delete env[GIT_USERNAME_VARIABLE];
  delete env[GIT_PASSWORD_VARIABLE];
  const given = (value: string | undefined): value is string => value !== undefined && value !== '';
  if (!given(username) && !given(password)) return undefined;
  if (!given(username) || !given(password)) {
    const missing = given(username) ? GIT_PASSWORD_VARIABLE : GIT_USERNAME_VARIABLE;
    throw new InvalidArgumentError(
      `${missing} is required when ${missing === GIT_PASSWORD_VARIABLE ? GIT_USERNAME_VARIABLE : GIT_PASSWORD_VARIABLE} is set (the git credentials come as a pair)`,
      missing,
    );
  }
  if (/[\r\n\0]/.test(username) || /[\r\n\0]/.test(password)) {
    // git's credential protocol is line-based: a newline would forge another attribute.
    throw new InvalidArgumentError(
      `${GIT_USERNAME_VARIABLE} and ${GIT_PASSWORD_VARIABLE} must be one line each`,
      /[\r\n\0]/.test(username) ? GIT_USERNAME_VARIABLE : GIT_PASSWORD_VARIABLE,
    );
  }
  return new GitCredentials(username, password);
}

/** Any secret this process has read, replaced by `***`. */
export function redactKnownSecrets(text: string): string {
  let redacted = text;
  for (const secret of knownSecrets) redacted = redacted.replaceAll(secret, '***');
  return redacted;
}

/**
 * The environment of a git process that must carry the credentials: the agent's own, without
 * the variables simple-git's environment guard refuses when they are passed explicitly (it
 * drops them silently when they are inherited, so git saw none of them before either).
 */
export function gitProcessEnv(
  base: Record<string, string | undefined>,
  extra: Record<string, string>,
): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(base)) {
    if (value === undefined) continue;
    if (/^(git_.*|editor|visual|pager|prefix|ssh_askpass)$/i.test(name)) {
      if (name.toUpperCase() !== 'GIT_TERMINAL_PROMPT') continue;
    }
    env[name] = value;
  }
  return { ...env, ...extra };
}
