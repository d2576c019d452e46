import { assertEquals } from "../helpers/assert.ts";
import { RUN_PERMISSIONS } from "../../src/permissions.ts";

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
