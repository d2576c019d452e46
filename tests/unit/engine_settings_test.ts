import { assertEquals } from "../helpers/assert.ts";
import { ENGINE_SETTINGS, engineSettings, resolveSettings } from "../../src/config/settings.ts";

Deno.test("engineSettings() gives tasks the environment it is passed, less the broker settings", () => {
  const config = resolveSettings(ENGINE_SETTINGS, {
    options: { killGrace: "1.5" },
    env: { TERARIUM_TASKRUNNER_WORK_DIR: "/w" },
  });
  const settings = engineSettings(config, {
    PATH: "/only/this/path",
    OPENAI_API_KEY: "kept",
    TERARIUM_MQ_PASSWORD: "secret",
    UNSET: undefined,
  });
  assertEquals(settings.env, { PATH: "/only/this/path", OPENAI_API_KEY: "kept" });
  assertEquals([settings.workDir, settings.killGraceMs], ["/w", 1500]);
});
