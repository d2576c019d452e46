import { assertEquals, assertMatch } from "../helpers/assert.ts";
import { fixture } from "../helpers/serve_harness.ts";

// Deno grants `/sys` only to programs with every permission: the cgroup is made with `sh`.
function sh(script: string, ...args: string[]): boolean {
  return new Deno.Command("sh", { args: ["-c", script, "sh", ...args], stderr: "null" })
    .outputSync().success;
}

/**
 * A memory cgroup of its own with a limit, where this machine lets us make one (root, a
 * cgroup v2 with the memory controller, or cgroup v1's memory hierarchy); removed on disposal.
 * Undefined where none can be made.
 */
function memoryCgroup(limitBytes: number): ({ path: string } & AsyncDisposable) | undefined {
  const name = `taskrunner-oom-test-${crypto.randomUUID()}`;
  const candidates = [
    { parent: "/sys/fs/cgroup", limit: "memory.max", v2: true },
    { parent: "/sys/fs/cgroup/memory", limit: "memory.limit_in_bytes", v2: false },
  ];
  for (const { parent, limit, v2 } of candidates) {
    if (v2 && !sh('grep -qw memory "$1/cgroup.controllers"', parent)) continue;
    const path = `${parent}/${name}`;
    if (
      !sh(
        'mkdir "$1" && echo "$2" > "$1/$3" || { rmdir "$1"; false; }',
        path,
        String(limitBytes),
        limit,
      )
    ) {
      continue;
    }
    return {
      path,
      [Symbol.asyncDispose]: async () => {
        // Empty once the runner inside has exited.
        for (let i = 0; i < 50 && !sh('rmdir "$1"', path); i++) {
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
      },
    };
  }
  return undefined;
}

/** Whether this test may make a memory cgroup: root, with cgroup v1 or v2 mounted. */
function cgroupsWritable(): boolean {
  return Deno.uid() === 0 &&
    sh("test -d /sys/fs/cgroup/memory || test -f /sys/fs/cgroup/cgroup.controllers");
}

Deno.test({
  name: "a task the kernel's OOM killer kills gets a FAILED text that says so",
  // Needs root and a memory cgroup it may make (cgroup v2 with memory, or v1's hierarchy).
  ignore: !cgroupsWritable(),
  async fn() {
    const made = memoryCgroup(500 * 1024 * 1024);
    if (!made) throw new Error("No memory cgroup could be made (cgroup v2 without memory?)");
    await using group = made;
    // The runner (`taskrunner run`) starts inside the cgroup: its tasks are in it too.
    const { code, stderr, stdout } = await new Deno.Command("sh", {
      args: [
        "-c",
        'echo $$ > "$1/cgroup.procs" && shift && exec "$@"',
        "sh",
        group.path,
        Deno.execPath(),
        "run",
        "--allow-all",
        new URL("../../main.ts", import.meta.url).pathname,
        "run",
        fixture("eat_memory.sh"),
        "--input-json",
        "{}",
      ],
    }).output();
    const text = new TextDecoder().decode(stdout) + new TextDecoder().decode(stderr);
    assertEquals(code, 1, text);
    assertMatch(
      text,
      /FAILED: Process for task \S+ exited early with code 137: task ".*eat_memory\.sh" was killed by SIGKILL, by the kernel's out-of-memory killer \(oom_kill in ".+" went from 0 to 1 while it ran\)/,
    );
  },
});
