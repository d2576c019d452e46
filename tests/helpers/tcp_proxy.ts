/**
 * A TCP proxy in front of the broker that a test can cut and restore: a network outage or a
 * broker restart, as the runner sees it, without disturbing the real broker.
 */
export class TcpProxy implements AsyncDisposable {
  readonly #listener: Deno.Listener;
  readonly #target: { hostname: string; port: number };
  readonly #links = new Set<Deno.Conn>();
  #up = true;
  #accepting: Promise<void>;

  private constructor(listener: Deno.Listener, target: { hostname: string; port: number }) {
    this.#listener = listener;
    this.#target = target;
    this.#accepting = this.#accept();
  }

  /** Starts a proxy on a free loopback port. */
  static start(target = { hostname: "127.0.0.1", port: 5672 }): TcpProxy {
    return new TcpProxy(Deno.listen({ hostname: "127.0.0.1", port: 0 }), target);
  }

  /** The proxy's port. */
  get port(): number {
    return (this.#listener.addr as Deno.NetAddr).port;
  }

  async #accept(): Promise<void> {
    for await (const client of this.#listener) {
      if (!this.#up) {
        client.close();
        continue;
      }
      this.#link(client).catch(() => {});
    }
  }

  async #link(client: Deno.Conn): Promise<void> {
    let server: Deno.Conn;
    try {
      server = await Deno.connect(this.#target);
    } catch {
      client.close();
      return;
    }
    this.#links.add(client);
    this.#links.add(server);
    const close = () => {
      for (const conn of [client, server]) {
        if (this.#links.delete(conn)) {
          try {
            conn.close();
          } catch {
            // already closed
          }
        }
      }
    };
    await Promise.all([
      client.readable.pipeTo(server.writable, { preventClose: true }).catch(() => {}),
      server.readable.pipeTo(client.writable, { preventClose: true }).catch(() => {}),
    ]).finally(close);
  }

  /** Drops every connection and refuses new ones until `restore()`. */
  cut(): void {
    this.#up = false;
    for (const conn of [...this.#links]) {
      this.#links.delete(conn);
      try {
        conn.close();
      } catch {
        // already closed
      }
    }
  }

  /** Accepts connections again. */
  restore(): void {
    this.#up = true;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.cut();
    this.#listener.close();
    await this.#accepting.catch(() => {});
  }
}
