import { assertEquals } from "../helpers/assert.ts";
import { RUN_PERMISSIONS, RUN_V8_FLAGS } from "../../src/permissions.ts";

Deno.test("RUN_PERMISSIONS are the permissions deno.json grants in start, taskrunner and compile", async (t) => {
  const config = JSON.parse(
    await Deno.readTextFile(new URL("../../deno.json", import.meta.url)),
  ) as { tasks: Record<string, string> };
  for (const task of ["start", "taskrunner", "compile"]) {
    await t.step(task, () => {
      const flags = (config.tasks[task] ?? "").split(/\s+/).filter((word) =>
        word.startsWith("--allow-")
      );
      assertEquals(flags, [...RUN_PERMISSIONS]);
    });
  }
});

Deno.test("RUN_V8_FLAGS are the V8 flags of start, taskrunner, compile and the image's build", async (t) => {
  const config = JSON.parse(
    await Deno.readTextFile(new URL("../../deno.json", import.meta.url)),
  ) as { tasks: Record<string, string> };
  const v8Flags = (command: string) =>
    command.split(/\s+/).filter((word) => word.startsWith("--v8-flags"));
  for (const task of ["start", "taskrunner", "compile"]) {
    await t.step(task, () => assertEquals(v8Flags(config.tasks[task] ?? ""), [...RUN_V8_FLAGS]));
  }
  await t.step("Dockerfile", async () => {
    const dockerfile = await Deno.readTextFile(new URL("../../Dockerfile", import.meta.url));
    const compile = dockerfile.slice(dockerfile.indexOf("deno compile"));
    assertEquals(v8Flags(compile.slice(0, compile.indexOf("main.ts"))), [...RUN_V8_FLAGS]);
  });
});
