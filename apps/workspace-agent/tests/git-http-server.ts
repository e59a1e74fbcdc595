/**
 * A git remote over HTTP that requires authentication, for tests: `git http-backend` (the CGI
 * program that ships with git) behind a Node HTTP server that checks HTTP basic auth.
 */
import { spawn } from 'node:child_process';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';

export interface GitHttpServer {
  /** `http://127.0.0.1:<port>/<repository>`: no credentials in it. */
  url(repository: string): string;
  /** Every request line and its outcome (status, the user it authenticated). */
  readonly requests: { method: string; url: string; status: number; user?: string }[];
  close(): Promise<void>;
}

const HTTP_BACKEND = join(
  execFileSync('git', ['--exec-path'], { encoding: 'utf8' }).trim(),
  'git-http-backend',
);

function authenticatedUser(
  request: IncomingMessage,
  username: string,
  password: string,
): string | undefined {
  const header = request.headers.authorization;
  if (header === undefined || !header.startsWith('Basic ')) return undefined;
  const decoded = Buffer.from(header.slice('Basic '.length), 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return undefined;
  return decoded.slice(0, colon) === username && decoded.slice(colon + 1) === password
    ? username
    : undefined;
}

/** Runs one request through git http-backend (RFC 3875 CGI) and relays its answer. */
function serveWithHttpBackend(
  projectRoot: string,
  user: string,
  request: IncomingMessage,
  response: ServerResponse,
  done: (status: number) => void,
): void {
  const url = new URL(request.url ?? '/', 'http://localhost');
  const backend = spawn(HTTP_BACKEND, [], {
    env: {
      PATH: process.env['PATH'] ?? '',
      GIT_PROJECT_ROOT: projectRoot,
      GIT_HTTP_EXPORT_ALL: '1',
      REMOTE_USER: user,
      REMOTE_ADDR: request.socket.remoteAddress ?? '127.0.0.1',
      REQUEST_METHOD: request.method ?? 'GET',
      PATH_INFO: decodeURIComponent(url.pathname),
      QUERY_STRING: url.search.slice(1),
      CONTENT_TYPE: request.headers['content-type'] ?? '',
      ...(request.headers['content-encoding'] === undefined
        ? {}
        : { HTTP_CONTENT_ENCODING: String(request.headers['content-encoding']) }),
      ...(request.headers['git-protocol'] === undefined
        ? {}
        : { GIT_PROTOCOL: String(request.headers['git-protocol']) }),
    },
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  request.pipe(backend.stdin);
  let head = Buffer.alloc(0);
  let headersSent = false;
  let status = 200;
  backend.stdout.on('data', (chunk: Buffer) => {
    if (headersSent) {
      response.write(chunk);
      return;
    }
    head = Buffer.concat([head, chunk]);
    const end = head.indexOf('\r\n\r\n');
    const endLf = head.indexOf('\n\n');
    const [cut, separator] =
      end >= 0 && (endLf < 0 || end < endLf) ? [end, 4] : endLf >= 0 ? [endLf, 2] : [-1, 0];
    if (cut < 0) return;
    for (const line of head.subarray(0, cut).toString('utf8').split(/\r?\n/)) {
      const colon = line.indexOf(':');
      if (colon < 0) continue;
      const name = line.slice(0, colon).trim();
      const value = line.slice(colon + 1).trim();
      if (name.toLowerCase() === 'status') status = Number.parseInt(value, 10);
      else response.setHeader(name, value);
    }
    response.statusCode = status;
    headersSent = true;
    response.write(head.subarray(cut + separator));
  });
  backend.on('close', () => {
    if (!headersSent) response.statusCode = 500;
    response.end();
    done(headersSent ? status : 500);
  });
}

/**
 * Serves the bare repositories under `projectRoot` to one user with one password; any other
 * credential, or none, gets 401 with a basic-auth challenge. Push (receive-pack) is allowed to
 * the authenticated user.
 */
export async function startGitHttpServer(options: {
  projectRoot: string;
  username: string;
  password: string;
}): Promise<GitHttpServer> {
  const requests: GitHttpServer['requests'] = [];
  const server = createServer((request, response) => {
    const record = { method: request.method ?? '', url: request.url ?? '' };
    const user = authenticatedUser(request, options.username, options.password);
    if (user === undefined) {
      request.resume();
      response.writeHead(401, { 'WWW-Authenticate': 'Basic realm="berth test remote"' });
      response.end('authentication required\n');
      requests.push({ ...record, status: 401 });
      return;
    }
    serveWithHttpBackend(options.projectRoot, user, request, response, (status) =>
      requests.push({ ...record, status, user }),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: (repository) => `http://127.0.0.1:${port}/${repository}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
