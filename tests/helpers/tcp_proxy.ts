/**
 * A TCP proxy in front of the broker that a test can cut and restore: a network outage or a
 * broker restart, as the runner sees it, without disturbing the real broker. It can also
 * black-hole the network (connections accepted, nothing answered, nothing forwarded) and
 * terminate TLS (an `amqps://` broker in front of the plain one).
 */
export class TcpProxy implements AsyncDisposable {
  readonly #listener: Deno.Listener;
  readonly #target: { hostname: string; port: number };
  readonly #links = new Set<Link>();
  #mode: "up" | "cut" | "blackhole" = "up";
  #accepting: Promise<void>;

  private constructor(listener: Deno.Listener, target: { hostname: string; port: number }) {
    this.#listener = listener;
    this.#target = target;
    this.#accepting = this.#accept();
  }

  /**
   * Starts a proxy on a free loopback port.
   *
   * @param target where connections go (the test broker by default)
   * @param options `tls`: PEM certificate and key, to accept TLS and forward plain TCP
   */
  static start(
    target = { hostname: "127.0.0.1", port: 5672 },
    options: { tls?: { cert: string; key: string } } = {},
  ): TcpProxy {
    const listener = options.tls
      ? Deno.listenTls({ hostname: "127.0.0.1", port: 0, ...options.tls })
      : Deno.listen({ hostname: "127.0.0.1", port: 0 });
    return new TcpProxy(listener, target);
  }

  /** The proxy's port. */
  get port(): number {
    return (this.#listener.addr as Deno.NetAddr).port;
  }

  /** Connections accepted so far. */
  accepted = 0;

  async #accept(): Promise<void> {
    for await (const client of this.#listener) {
      this.accepted++;
      if (this.#mode === "cut") {
        client.close();
        continue;
      }
      this.#link(client).catch(() => {});
    }
  }

  async #link(client: Deno.Conn): Promise<void> {
    const link = new Link(client);
    this.#links.add(link);
    try {
      if (this.#mode === "blackhole") {
        link.holed = true;
        await link.swallow();
        return;
      }
      let server: Deno.Conn;
      try {
        server = await Deno.connect(this.#target);
      } catch {
        return;
      }
      link.server = server;
      await link.forward();
    } finally {
      this.#links.delete(link);
      link.close();
    }
  }

  /** Drops every connection and refuses new ones until `restore()`. */
  cut(): void {
    this.#mode = "cut";
    for (const link of [...this.#links]) {
      this.#links.delete(link);
      link.close();
    }
  }

  /**
   * Black-holes the network until `restore()`: open connections stay open but nothing goes
   * through any more, new ones are accepted and never answered.
   */
  blackHole(): void {
    this.#mode = "blackhole";
    for (const link of this.#links) link.holed = true;
  }

  /** Accepts and forwards new connections again (black-holed ones stay dead). */
  restore(): void {
    this.#mode = "up";
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.cut();
    this.#listener.close();
    await this.#accepting.catch(() => {});
  }
}

/** One proxied connection: the client's side, and the broker's once connected. */
class Link {
  readonly client: Deno.Conn;
  server: Deno.Conn | undefined;
  /** Nothing is forwarded any more. */
  holed = false;

  constructor(client: Deno.Conn) {
    this.client = client;
  }

  /** Reads and discards what the client sends until it closes. */
  async swallow(): Promise<void> {
    await this.client.readable.pipeTo(new WritableStream()).catch(() => {});
  }

  /** Forwards both ways until either side closes (or forever, silently, once holed). */
  async forward(): Promise<void> {
    const server = this.server!;
    const gate = () =>
      new TransformStream<Uint8Array, Uint8Array>({
        transform: (chunk, controller) => {
          if (!this.holed) controller.enqueue(chunk);
        },
      });
    const up = this.client.readable.pipeThrough(gate())
      .pipeTo(server.writable, { preventClose: true }).catch(() => {});
    const down = server.readable.pipeThrough(gate())
      .pipeTo(this.client.writable, { preventClose: true }).catch(() => {});
    // The broker closing a black-holed link is not seen by the client: only its own close.
    await Promise.race([up, down.then(() => this.holed ? up : undefined)]);
  }

  close(): void {
    for (const conn of [this.client, this.server]) {
      try {
        conn?.close();
      } catch {
        // already closed
      }
    }
  }
}
