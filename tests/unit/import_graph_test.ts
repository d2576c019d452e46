/**
 * The shape of the source tree, as std's `lint:circular` checks its own: every `import` and
 * `export … from` of `src/` and `main.ts` (type-only ones included) points down the layer order
 * below and closes no circle, and no function in `src/` is longer than {@linkcode MAX_FUNCTION_LINES}.
 * The files are parsed by Deno's own linter (`Deno.lint.runPlugin`): a real syntax tree, no
 * regular expressions over source text.
 *
 * @module
 */
import { assertEquals } from "../helpers/assert.ts";

const ROOT = new URL("../../", import.meta.url);

/**
 * The layers, from the floor up. A module imports from its own layer or one below, never from
 * one above: an upward import means a type or a port lives on the wrong floor. Keep README.md's
 * "How it works" (the paths table and the paragraph about layers) in step with this list.
 */
const LAYERS: readonly (readonly string[])[] = [
  // Helpers of no layer: promises and signals, bytes, JSON walking, stderr; the version and
  // the permissions, which are constants.
  ["src/util/", "src/version.ts", "src/permissions.ts"],
  // The operating system: libc through FFI, poll(), inotify, /proc, signals, prctl, memory.
  ["src/os/"],
  // The task engine: FIFOs, processes, progress framing, timers, allow-list. No AMQP.
  ["src/task/"],
  // The wire (requests, responses, statuses), the status sequence of a task, and the ports
  // and errors through which the runner and the broker meet.
  ["src/protocol/"],
  // Logger, metrics, task table, HTTP endpoint; the observers the layers above report to.
  ["src/observability/"],
  // Every setting: flags, environment, defaults (log levels among them), broker addresses.
  ["src/config/"],
  // Connection, channels, topology, consumer, publisher. No processes.
  ["src/broker/"],
  // Deliveries in, task runs, responses out: the one place where broker and engine meet.
  ["src/runner/"],
  // Front doors' helpers: terminal display for `run`, the hmi-server's side, shell completion.
  ["src/local/", "src/client/", "src/completion/"],
  ["src/commands/"],
  ["src/cli.ts"],
  ["main.ts"],
];

/** The longest a function or method body in `src/` may be, in lines (its braces included). */
const MAX_FUNCTION_LINES = 80;

function layerOf(path: string): number {
  const index = LAYERS.findIndex((layer) =>
    layer.some((prefix) => prefix.endsWith("/") ? path.startsWith(prefix) : path === prefix)
  );
  if (index < 0) throw new Error(`Module "${path}" is in no layer: add it to LAYERS`);
  return index;
}

interface SourceFile {
  path: string;
  text: string;
}

async function sourceFiles(): Promise<SourceFile[]> {
  const paths = ["main.ts"];
  async function walk(dir: string): Promise<void> {
    for await (const entry of Deno.readDir(new URL(dir, ROOT))) {
      const path = `${dir}${entry.name}`;
      if (entry.isDirectory) await walk(`${path}/`);
      else if (entry.name.endsWith(".ts")) paths.push(path);
    }
  }
  await walk("src/");
  paths.sort();
  return await Promise.all(
    paths.map(async (path) => ({ path, text: await Deno.readTextFile(new URL(path, ROOT)) })),
  );
}

/** A function too long, or an import of a module of the tree. */
interface Parsed {
  imports: string[];
  functions: { name: string; line: number; lines: number }[];
}

// deno-lint-ignore no-explicit-any
type Node = any;

function lineAt(text: string, offset: number): number {
  let line = 1;
  for (let i = text.indexOf("\n"); i !== -1 && i < offset; i = text.indexOf("\n", i + 1)) line++;
  return line;
}

function functionName(node: Node): string {
  const parent = node.parent;
  if (node.id?.name) return node.id.name;
  if (parent?.type === "MethodDefinition" || parent?.type === "Property") {
    return parent.key?.name ?? parent.key?.value ?? "(computed)";
  }
  if (parent?.type === "VariableDeclarator") return parent.id?.name ?? "(arrow)";
  return "(anonymous)";
}

function parse(file: SourceFile): Parsed {
  const parsed: Parsed = { imports: [], functions: [] };
  const source = (node: Node) => {
    const value = node.source?.value;
    if (typeof value === "string" && value.startsWith(".")) {
      parsed.imports.push(new URL(value, new URL(file.path, ROOT)).pathname.slice(
        ROOT.pathname.length,
      ));
    }
  };
  const fn = (node: Node) => {
    const body = node.body;
    if (body?.type !== "BlockStatement") return;
    const line = lineAt(file.text, body.range[0]);
    parsed.functions.push({
      name: functionName(node),
      line,
      lines: lineAt(file.text, body.range[1]) - line + 1,
    });
  };
  const plugin: Deno.lint.Plugin = {
    name: "shape",
    rules: {
      scan: {
        create: () => ({
          ImportDeclaration: source,
          ExportNamedDeclaration: source,
          ExportAllDeclaration: source,
          FunctionDeclaration: fn,
          FunctionExpression: fn,
          ArrowFunctionExpression: fn,
        }),
      },
    },
  };
  Deno.lint.runPlugin(plugin, file.path, file.text);
  return parsed;
}

/** The circles of a graph (one per strongly connected component of more than one module). */
function circles(graph: Map<string, string[]>): string[][] {
  // Tarjan's algorithm.
  let next = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const visit = (node: string) => {
    index.set(node, next);
    low.set(node, next++);
    stack.push(node);
    onStack.add(node);
    for (const to of graph.get(node) ?? []) {
      if (!index.has(to)) {
        visit(to);
        low.set(node, Math.min(low.get(node)!, low.get(to)!));
      } else if (onStack.has(to)) low.set(node, Math.min(low.get(node)!, index.get(to)!));
    }
    if (low.get(node) === index.get(node)) {
      const component: string[] = [];
      let member: string;
      do {
        member = stack.pop()!;
        onStack.delete(member);
        component.push(member);
      } while (member !== node);
      const selfImport = (graph.get(node) ?? []).includes(node);
      if (component.length > 1 || selfImport) found.push(component.sort());
    }
  };
  for (const node of graph.keys()) if (!index.has(node)) visit(node);
  return found;
}

const files = await sourceFiles();
const parsedFiles = new Map(files.map((file) => [file.path, parse(file)]));
const graph = new Map([...parsedFiles].map(([path, parsed]) => [path, parsed.imports]));

Deno.test("the source tree has the modules the import graph is read from", () => {
  // A parser that found nothing would pass every check below.
  assertEquals(graph.size > 100, true, `only ${graph.size} modules`);
  assertEquals((graph.get("main.ts") ?? []).includes("src/cli.ts"), true);
  assertEquals(
    parsedFiles.get("src/task/run_task.ts")?.functions.some((f) => f.name === "runTask"),
    true,
  );
});

Deno.test("every module of src/ and main.ts is in a layer", () => {
  const outside = [...graph.keys()].filter((path) => {
    try {
      layerOf(path);
      return false;
    } catch {
      return true;
    }
  });
  assertEquals(outside, []);
});

Deno.test("every import of src/ and main.ts resolves to a module of the tree", () => {
  const missing = [...graph].flatMap(([from, imports]) =>
    imports.filter((to) => to.startsWith("src/") && !graph.has(to)).map((to) => `${from} -> ${to}`)
  );
  assertEquals(missing, []);
});

Deno.test("no import of src/ and main.ts closes a circle", () => {
  assertEquals(circles(graph).map((circle) => circle.join(" <-> ")), []);
});

Deno.test("no import of src/ and main.ts goes up the layer order", () => {
  const upward = [...graph].flatMap(([from, imports]) =>
    imports.filter((to) => graph.has(to) && layerOf(to) > layerOf(from)).map((to) =>
      `${from} -> ${to}`
    )
  );
  assertEquals(upward, []);
});

Deno.test(`no function in src/ is longer than ${MAX_FUNCTION_LINES} lines`, () => {
  const long = [...parsedFiles].flatMap(([path, parsed]) =>
    path.startsWith("src/")
      ? parsed.functions.filter((f) => f.lines > MAX_FUNCTION_LINES).map((f) =>
        `${path}:${f.line} ${f.name} (${f.lines} lines)`
      )
      : []
  );
  assertEquals(long, []);
});

Deno.test("circles() finds a circle and a self-import, and none in a tree", () => {
  assertEquals(
    circles(new Map([["a", ["b"]], ["b", ["c"]], ["c", ["a"]], ["d", ["a"]]])),
    [["a", "b", "c"]],
  );
  assertEquals(circles(new Map([["a", ["a"]]])), [["a"]]);
  assertEquals(circles(new Map([["a", ["b", "c"]], ["b", ["c"]], ["c", []]])), []);
});
