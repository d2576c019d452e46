import { type TestNames, testNames } from "./broker_harness.ts";

/**
 * Fresh names with a request type of their own, so that the runner's connection (named
 * `taskrunner <version> <requestType>`) can be told apart on the broker.
 */
export function uniqueNames(label: string): TestNames {
  const names = testNames(label);
  const requestType = `${label}-${crypto.randomUUID().slice(0, 8)}`;
  return { ...names, requestType, fullRequestQueue: `${names.requestQueue}-${requestType}` };
}

/** A TCP port free right now on 127.0.0.1: listened on with port 0, then released. */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

/** Status and body of a GET. */
export async function get(url: string): Promise<{ status: number; body: string; type: string }> {
  const response = await fetch(url);
  return {
    status: response.status,
    body: await response.text(),
    type: response.headers.get("content-type") ?? "",
  };
}

async function rabbitmqctl(args: string[]): Promise<string> {
  const { success, stdout, stderr } = await new Deno.Command("rabbitmqctl", {
    args,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(stdout);
  if (!success) {
    throw new Error(`rabbitmqctl ${args[0]} failed: ${new TextDecoder().decode(stderr).trim()}`);
  }
  return text;
}

/**
 * The broker's ids (Erlang pids, what `close_connection` takes) of the connections whose
 * `connection_name` client property is `connectionName`.
 */
export async function brokerConnections(connectionName: string): Promise<string[]> {
  // Tab-separated `<rabbit@host.1.2.3>\t[{"connection_name","..."},...]`; the JSON formatter
  // prints pids in a form `close_connection` does not take.
  const text = await rabbitmqctl([
    "list_connections",
    "pid",
    "client_properties",
    "--quiet",
    "--no-table-headers",
  ]);
  const wanted = `{"connection_name",${JSON.stringify(connectionName)}}`;
  return text.split("\n").filter((line) => line.includes(wanted)).map((line) =>
    line.split("\t")[0]!
  );
}

/** Closes a connection from the broker's side, as an outage or an operator would. */
export async function closeBrokerConnection(pid: string): Promise<void> {
  await rabbitmqctl(["close_connection", pid, "closed by a test"]);
}

/** Runs `rabbitmqctl` with `args`; for user set-up in tests. */
export function brokerCtl(args: string[]): Promise<string> {
  return rabbitmqctl(args);
}

/** One sample of a Prometheus text exposition. */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const SAMPLE_LINE =
  /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*",?)*\})? (-?[0-9.eE+-]+|[+-]?Inf|NaN)( -?[0-9]+)?$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"/g;

/**
 * Parses the Prometheus text format strictly enough for a test: every comment is `# HELP` or
 * `# TYPE` (or another comment), every other non-empty line is `name{labels} value`.
 *
 * @throws {Error} naming the first line that does not parse
 */
export function parsePrometheus(text: string): Sample[] {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  for (const line of text.split("\n")) {
    if (line === "") continue;
    if (line.startsWith("# TYPE ")) {
      const type = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/
        .exec(line);
      if (!type) throw new Error(`Malformed TYPE line: ${line}`);
      types.set(type[1]!, type[2]!);
      continue;
    }
    if (line.startsWith("# HELP ")) {
      if (!/^# HELP [a-zA-Z_:][a-zA-Z0-9_:]* \S/.test(line)) {
        throw new Error(`Malformed HELP line: ${line}`);
      }
      continue;
    }
    if (line.startsWith("#")) continue;
    const match = SAMPLE_LINE.exec(line);
    if (!match) throw new Error(`Not a Prometheus sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const [, key, value] of (match[2] ?? "").matchAll(LABEL)) labels[key!] = value!;
    const raw = match[3]!;
    const value = raw === "+Inf" || raw === "Inf"
      ? Infinity
      : raw === "-Inf"
      ? -Infinity
      : Number(raw);
    const name = match[1]!;
    const family = name.replace(/_(bucket|sum|count)$/, "");
    if (!types.has(name) && !types.has(family)) throw new Error(`Sample without # TYPE: ${line}`);
    samples.push({ name, labels, value });
  }
  return samples;
}

/** The value of one sample, matching all of `labels`; undefined if absent. */
export function sampleValue(
  samples: Sample[],
  name: string,
  labels: Record<string, string> = {},
): number | undefined {
  return samples.find((sample) =>
    sample.name === name &&
    Object.entries(labels).every(([key, value]) => sample.labels[key] === value)
  )?.value;
}
