import { errorMessage } from "../util/async.ts";
import type { Logger } from "./log.ts";
import type { TaskSnapshot } from "./task_table.ts";

/** Whether the runner can take work now; when not, why. */
export type Readiness = { ready: true } | { ready: false; reason: string };

/** Whether the runner works at all; when not, why (the orchestrator should restart it). */
export type Liveness = { alive: true } | { alive: false; reason: string };

/** What the endpoint reports. */
export interface Probes {
  /** Decides `GET /healthz`; without it, alive while the process runs. */
  liveness?(): Liveness;
  /** Decides `GET /readyz`. */
  readiness(): Readiness;
  /** The body of `GET /metrics`. */
  metrics(): Promise<string>;
  /** Its content type. */
  metricsContentType: string;
  /** The requests being worked on, for `GET /tasks` (404 without). */
  tasks?: {
    list(): TaskSnapshot[];
    get(id: string): TaskSnapshot | undefined;
  };
}

/** The running endpoint; closing it stops listening. */
export interface HttpEndpoint extends AsyncDisposable {
  readonly hostname: string;
  readonly port: number;
  /** Stops listening and waits for requests in progress. */
  close(): Promise<void>;
}

const JSON_TYPE = "application/json; charset=utf-8";
const TASK_PATH = "/tasks/";

/**
 * Serves `GET /healthz` (200 while alive, 503 with a JSON reason once the runner cannot work,
 * e.g. no broker connection for too long), `GET /readyz` (200 when ready, 503 with
 * a JSON reason otherwise), `GET /metrics` (Prometheus text format), for probes and
 * scrapers, and `GET /tasks` (the requests being worked on, JSON) and `GET /tasks/<id>` (one of
 * them; 404 when not here), for `taskrunner ps` and `inspect`.
 *
 * @param probes where readiness and metrics come from
 * @param options where to listen
 * @throws {Error} when the address cannot be listened on
 */
export function startHttpEndpoint(
  probes: Probes,
  options: { port: number; hostname: string; logger: Logger },
): HttpEndpoint {
  const log = options.logger;
  let server: Deno.HttpServer<Deno.NetAddr>;
  try {
    server = Deno.serve({
      port: options.port,
      hostname: options.hostname,
      onListen: () => {},
      onError: (error) => {
        log.warn("HTTP endpoint request failed", { error: String(error) });
        return new Response("Internal Server Error\n", { status: 500 });
      },
    }, (request) => handle(request, probes));
  } catch (error) {
    throw new Error(
      `Cannot listen on ${options.hostname}:${options.port} for the HTTP endpoint: ${
        errorMessage(error)
      }`,
      { cause: error },
    );
  }
  const { hostname, port } = server.addr;
  log.info("HTTP endpoint listening", { hostname, port });
  const close = async () => {
    await server.shutdown();
  };
  return { hostname, port, close, [Symbol.asyncDispose]: close };
}

async function handle(request: Request, probes: Probes): Promise<Response> {
  if (request.method !== "GET" && request.method !== "HEAD") {
    return new Response("Method Not Allowed\n", { status: 405, headers: { allow: "GET, HEAD" } });
  }
  const path = new URL(request.url).pathname;
  if (probes.tasks && path.startsWith(TASK_PATH)) {
    let id: string;
    try {
      id = decodeURIComponent(path.slice(TASK_PATH.length));
    } catch {
      return json(400, { error: "Malformed task id" });
    }
    const task = probes.tasks.get(id);
    return task ? json(200, task) : json(404, { error: `No task "${id}" on this runner` });
  }
  switch (path) {
    case "/healthz": {
      const liveness = probes.liveness?.() ?? { alive: true };
      return json(liveness.alive ? 200 : 503, liveness);
    }
    case "/readyz": {
      const readiness = probes.readiness();
      return json(readiness.ready ? 200 : 503, readiness);
    }
    case "/tasks":
      if (!probes.tasks) break;
      return json(200, { tasks: probes.tasks.list() });
    case "/metrics":
      return new Response(await probes.metrics(), {
        headers: { "content-type": probes.metricsContentType },
      });
  }
  return new Response("Not Found\n", { status: 404 });
}

function json(status: number, body: unknown): Response {
  return new Response(`${JSON.stringify(body)}\n`, {
    status,
    headers: { "content-type": JSON_TYPE, "cache-control": "no-store" },
  });
}
