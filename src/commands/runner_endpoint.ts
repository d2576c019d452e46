import { ConfigError } from "../config/settings.ts";
import type { TaskSnapshot } from "../observability/task_table.ts";
import { errorMessage } from "../util/async.ts";

/** How long `ps` and `inspect` wait for the runner's HTTP endpoint. */
const REQUEST_TIMEOUT_MS = 5_000;

/** The `--http-url` option of `ps` and `inspect`. */
export const HTTP_URL_FLAG = "--http-url <url>";

/** The help of {@linkcode HTTP_URL_FLAG}. */
export const HTTP_URL_HELP =
  "the runner's HTTP endpoint (default: http://TERARIUM_TASKRUNNER_HTTP_HOST:TERARIUM_TASKRUNNER_HTTP_PORT, " +
  "127.0.0.1 for a host of 0.0.0.0 or unset)";

/**
 * The base URL of a runner's HTTP endpoint: `--http-url`, or else the port and host `serve`
 * reads from the same environment (a runner listening on every address is asked on loopback).
 *
 * @throws {ConfigError} when neither is given (the endpoint is off: port 0 or unset) or the
 * URL is not one
 */
export function runnerEndpoint(
  httpUrl: string | undefined,
  env: Record<string, string | undefined>,
): URL {
  if (httpUrl !== undefined) {
    try {
      const url = new URL(httpUrl);
      if (url.protocol === "http:" || url.protocol === "https:") {
        // Paths below it are resolved against a directory: `/tasks` under a prefix stays under it.
        if (!url.pathname.endsWith("/")) url.pathname += "/";
        return url;
      }
    } catch {
      // reported below
    }
    throw new ConfigError(
      `Invalid option --http-url ${JSON.stringify(httpUrl)}: not an http(s) URL`,
    );
  }
  const port = Number(env.TERARIUM_TASKRUNNER_HTTP_PORT || "0");
  if (!Number.isInteger(port) || port <= 0 || port > 65535) {
    throw new ConfigError(
      "The runner's HTTP endpoint is off or unknown: give --http-url, or set " +
        "TERARIUM_TASKRUNNER_HTTP_PORT as the runner has it (serve --http-port)",
    );
  }
  const host = env.TERARIUM_TASKRUNNER_HTTP_HOST;
  const hostname = !host || host === "0.0.0.0" || host === "::" ? "127.0.0.1" : host;
  return new URL(`http://${hostname.includes(":") ? `[${hostname}]` : hostname}:${port}`);
}

/** A runner's answer to `GET /tasks/<id>` when it is not working on that task. */
export class TaskNotFoundError extends Error {
  constructor(id: string, endpoint: URL) {
    super(
      `No task "${id}" on the runner at ${endpoint.origin}: finished, not yet received, or on another runner`,
    );
    this.name = "TaskNotFoundError";
  }
}

/** The requests a runner is working on, from `GET /tasks`. */
export async function fetchTasks(endpoint: URL): Promise<TaskSnapshot[]> {
  const body = await getJson(new URL("tasks", endpoint), endpoint);
  if (!body || !Array.isArray((body as { tasks?: unknown }).tasks)) {
    throw new Error(`Unexpected answer of ${endpoint.origin}/tasks: no "tasks" list`);
  }
  return (body as { tasks: TaskSnapshot[] }).tasks;
}

/**
 * One request a runner is working on, from `GET /tasks/<id>`.
 *
 * @throws {TaskNotFoundError} when the runner is not working on it
 */
export async function fetchTask(endpoint: URL, id: string): Promise<TaskSnapshot> {
  const url = new URL(`tasks/${encodeURIComponent(id)}`, endpoint);
  const body = await getJson(url, endpoint, {
    notFound: () => new TaskNotFoundError(id, endpoint),
  });
  return body as TaskSnapshot;
}

async function getJson(
  url: URL,
  endpoint: URL,
  options: { notFound?: () => Error } = {},
): Promise<unknown> {
  let response: Response;
  try {
    response = await fetch(url, { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
  } catch (error) {
    throw new Error(
      `Cannot reach the runner's HTTP endpoint at ${endpoint.origin}: ${reason(error)} ` +
        "(is the runner serving with --http-port?)",
      { cause: error },
    );
  }
  const text = await response.text();
  if (response.status === 404) {
    const isJson = response.headers.get("content-type")?.startsWith("application/json");
    if (isJson && options.notFound) throw options.notFound();
    throw new Error(
      `The HTTP endpoint at ${endpoint.origin} has no ${url.pathname}: a runner older than ` +
        "this command, or not a taskrunner",
    );
  }
  if (!response.ok) {
    throw new Error(
      `${url.pathname} at ${endpoint.origin} answered ${response.status}: ${text.trim()}`,
    );
  }
  try {
    return JSON.parse(text);
  } catch {
    throw new Error(`${url.pathname} at ${endpoint.origin} answered something else than JSON`);
  }
}

// fetch says only "fetch failed"; why (connection refused, a timeout) is in its cause.
function reason(error: unknown): string {
  const cause = error instanceof Error && error.cause !== undefined ? error.cause : undefined;
  return cause === undefined
    ? errorMessage(error)
    : `${errorMessage(error)}: ${errorMessage(cause)}`;
}
