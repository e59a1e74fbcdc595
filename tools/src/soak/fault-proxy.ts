/**
 * A TCP proxy on 127.0.0.1 that sits between berth's services and one engine (DynamoDB Local
 * or fauxqs) and can be told, while it runs, to slow every byte down or to make connections
 * fail. The services see what they would see from a sick AWS endpoint: slow answers, resets,
 * refused connections.
 */
import { once } from 'node:events';
import { connect, createServer, type Server, type Socket } from 'node:net';

export type Fault =
  /** Every chunk, in both directions, is held back this long (plus up to `jitterMs`). */
  | { kind: 'latency'; ms: number; jitterMs?: number }
  /** Open connections are reset, and new ones are accepted and reset at once (ECONNRESET). */
  | { kind: 'reset' }
  /** Nothing listens: new connections are refused (ECONNREFUSED), open ones are reset. */
  | { kind: 'refuse' };

export interface FaultProxyOptions {
  name: string;
  targetPort: number;
  targetHost?: string;
  /** The port to listen on; a free one when absent. */
  port?: number;
  /** For latency jitter; Math.random when absent. */
  random?: () => number;
}

export interface FaultProxyStats {
  connections: number;
  resets: number;
  refusedWindows: number;
  delayedChunks: number;
}

/**
 * Keeps the order of the chunks of one direction while holding each back: a chunk is written
 * no earlier than its due time and never before the chunk ahead of it.
 */
class Conveyor {
  readonly #to: Socket;
  readonly #queue: { chunk: Buffer; due: number }[] = [];
  #lastDue = 0;
  #timer: NodeJS.Timeout | undefined;
  #endWhenEmpty = false;

  constructor(to: Socket) {
    this.#to = to;
  }

  push(chunk: Buffer, delayMs: number): void {
    const due = Math.max(Date.now() + delayMs, this.#lastDue);
    this.#lastDue = due;
    this.#queue.push({ chunk, due });
    this.#pump();
  }

  end(): void {
    this.#endWhenEmpty = true;
    this.#pump();
  }

  stop(): void {
    clearTimeout(this.#timer);
    this.#queue.length = 0;
  }

  #pump(): void {
    if (this.#timer !== undefined) return;
    for (;;) {
      const head = this.#queue[0];
      if (head === undefined) {
        if (this.#endWhenEmpty && !this.#to.destroyed) this.#to.end();
        return;
      }
      const wait = head.due - Date.now();
      if (wait > 0) {
        this.#timer = setTimeout(() => {
          this.#timer = undefined;
          this.#pump();
        }, wait);
        return;
      }
      this.#queue.shift();
      if (!this.#to.destroyed) this.#to.write(head.chunk);
    }
  }
}

interface Link {
  client: Socket;
  upstream: Socket;
  conveyors: Conveyor[];
}

export class FaultProxy {
  readonly name: string;
  readonly port: number;
  readonly #targetHost: string;
  readonly #targetPort: number;
  readonly #random: () => number;
  readonly #links = new Set<Link>();
  readonly #stats: FaultProxyStats = {
    connections: 0,
    resets: 0,
    refusedWindows: 0,
    delayedChunks: 0,
  };
  #server: Server;
  #fault: Fault | undefined;
  #closed = false;

  private constructor(options: FaultProxyOptions, server: Server, port: number) {
    this.name = options.name;
    this.#targetHost = options.targetHost ?? '127.0.0.1';
    this.#targetPort = options.targetPort;
    this.#random = options.random ?? Math.random;
    this.#server = server;
    this.port = port;
  }

  static async start(options: FaultProxyOptions): Promise<FaultProxy> {
    const server = createServer();
    server.listen(options.port ?? 0, '127.0.0.1');
    await once(server, 'listening');
    const address = server.address();
    if (address === null || typeof address === 'string') throw new Error('the proxy got no port');
    const proxy = new FaultProxy(options, server, address.port);
    // Nobody knew the port before `listening`, so no connection has arrived unhandled.
    server.on('connection', (client: Socket) => proxy.#accept(client));
    return proxy;
  }

  get endpoint(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get fault(): Fault | undefined {
    return this.#fault;
  }

  get stats(): FaultProxyStats {
    return { ...this.#stats };
  }

  /** Opens connections now, so tests can see a reset reach them. */
  get openConnections(): number {
    return this.#links.size;
  }

  /** Sets (or, with undefined, clears) the fault; resolves once it is in force. */
  async setFault(fault: Fault | undefined): Promise<void> {
    const previous = this.#fault;
    this.#fault = fault;
    if (fault?.kind === 'reset' || fault?.kind === 'refuse') this.#resetAll();
    if (fault?.kind === 'refuse' && previous?.kind !== 'refuse') {
      this.#stats.refusedWindows += 1;
      await this.#stopListening();
    }
    if (fault?.kind !== 'refuse' && previous?.kind === 'refuse') await this.#listenAgain();
  }

  /** The fault for `durationMs`, then none. */
  async window(fault: Fault, durationMs: number, signal?: AbortSignal): Promise<void> {
    await this.setFault(fault);
    try {
      await new Promise<void>((resolve) => {
        if (signal?.aborted) return resolve();
        const timer = setTimeout(resolve, durationMs);
        signal?.addEventListener('abort', () => {
          clearTimeout(timer);
          resolve();
        });
      });
    } finally {
      await this.setFault(undefined);
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const link of this.#links) this.#drop(link, false);
    if (this.#server.listening) {
      const closed = once(this.#server, 'close');
      this.#server.close();
      await closed;
    }
  }

  #accept(client: Socket): void {
    this.#stats.connections += 1;
    if (this.#closed || this.#fault?.kind === 'reset' || this.#fault?.kind === 'refuse') {
      this.#stats.resets += 1;
      client.resetAndDestroy();
      return;
    }
    client.setNoDelay(true);
    const upstream = connect({ host: this.#targetHost, port: this.#targetPort });
    upstream.setNoDelay(true);
    const toUpstream = new Conveyor(upstream);
    const toClient = new Conveyor(client);
    const link: Link = { client, upstream, conveyors: [toUpstream, toClient] };
    this.#links.add(link);
    const delay = (): number => {
      const fault = this.#fault;
      if (fault?.kind !== 'latency') return 0;
      this.#stats.delayedChunks += 1;
      return fault.ms + Math.floor(this.#random() * (fault.jitterMs ?? 0));
    };
    client.on('data', (chunk: Buffer) => toUpstream.push(chunk, delay()));
    upstream.on('data', (chunk: Buffer) => toClient.push(chunk, delay()));
    client.on('end', () => toUpstream.end());
    upstream.on('end', () => toClient.end());
    // Either side failing or closing takes the other with it, as a real network path would.
    const drop = (): void => this.#drop(link, false);
    client.on('error', drop);
    upstream.on('error', () => this.#drop(link, true));
    client.on('close', drop);
    upstream.on('close', drop);
  }

  #drop(link: Link, resetClient: boolean): void {
    if (!this.#links.delete(link)) return;
    for (const conveyor of link.conveyors) conveyor.stop();
    if (resetClient && !link.client.destroyed) link.client.resetAndDestroy();
    else link.client.destroy();
    link.upstream.destroy();
  }

  #resetAll(): void {
    for (const link of [...this.#links]) {
      this.#stats.resets += 1;
      this.#drop(link, true);
    }
  }

  async #stopListening(): Promise<void> {
    if (!this.#server.listening) return;
    const closed = once(this.#server, 'close');
    this.#server.close();
    await closed;
  }

  /** The same port again; another process could take it meanwhile, so a few tries. */
  async #listenAgain(): Promise<void> {
    if (this.#closed) return;
    for (let attempt = 1; ; attempt += 1) {
      const server = createServer((client) => this.#accept(client));
      try {
        server.listen(this.port, '127.0.0.1');
        // `once` rejects when the server emits 'error' first (EADDRINUSE).
        await once(server, 'listening');
        this.#server = server;
        return;
      } catch (error) {
        if (attempt >= 20)
          throw new Error(`${this.name} proxy could not listen on ${this.port} again`, {
            cause: error,
          });
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
  }
}
