/**
 * README.md's settings table (Configuration) against src/config/settings.ts, as
 * tests/permissions_test.ts holds deno.json to src/permissions.ts: every setting in one is in
 * the other, with the same variable, flag and default.
 *
 * @module
 */
import { assertEquals } from "../helpers/assert.ts";
import {
  BROKER_SETTINGS,
  ENGINE_SETTINGS,
  LOG_SETTINGS,
  RUNNER_SETTINGS,
  type SettingSpec,
} from "../../src/config/settings.ts";
import { brokerPassword } from "../../src/config/connection_settings.ts";

interface Row {
  env: string;
  flag: string;
  /** The default's value as the README writes it first in backticks; absent: none written. */
  default: string | undefined;
}

/** The rows of the table under "## Configuration", one per variable. */
function readmeRows(readme: string): Row[] {
  const section = readme.slice(readme.search(/^## Configuration$/m));
  const table = section.slice(0, section.indexOf("\n\n", section.indexOf("\n| variable")));
  const rows: Row[] = [];
  for (const line of table.split("\n").filter((line) => line.startsWith("| `"))) {
    const [env, flag, _meaning, defaultCell] = line.split("|").slice(1, -1).map((cell) =>
      cell.trim()
    );
    const envs = [...env!.matchAll(/`([^`]+)`/g)].map((match) => match[1]!);
    const flags = [...flag!.matchAll(/`([^`]+)`/g)].map((match) => match[1]!);
    const shown = /^`([^`]*)`/.exec(defaultCell!)?.[1];
    envs.forEach((name, k) => {
      // `TERARIUM_TASKRUNNER_UID` / `_GID`: the second shares the first's prefix.
      const full = name.startsWith("_") ? envs[0]!.replace(/_[A-Z]+$/, name) : name;
      rows.push({ env: full, flag: flags[k] ?? "", default: shown });
    });
  }
  return rows;
}

/** Defaults applied where the setting is used rather than in its spec. */
const APPLIED_DEFAULTS: Record<string, unknown> = {
  TERARIUM_MQ_PASSWORD: brokerPassword({ password: undefined, passwordFile: undefined }),
};

/** How the README writes a default: an empty one (no list, no name) is written in words. */
function shownDefault(value: unknown): string | undefined {
  if (value === undefined || value === "" || (Array.isArray(value) && value.length === 0)) {
    return undefined;
  }
  return String(value);
}

function configRows(): Row[] {
  const specs: SettingSpec[] = [
    ...Object.values(BROKER_SETTINGS),
    ...Object.values(ENGINE_SETTINGS),
    ...Object.values(RUNNER_SETTINGS),
    ...Object.values(LOG_SETTINGS),
  ];
  const seen = new Map<string, Row>();
  for (const spec of specs) {
    seen.set(spec.env, {
      env: spec.env,
      flag: spec.flag,
      default: shownDefault(spec.default ?? APPLIED_DEFAULTS[spec.env]),
    });
  }
  return [...seen.values()];
}

const readme = await Deno.readTextFile(new URL("../../README.md", import.meta.url));

Deno.test("README's settings table names every setting of config, and no other", () => {
  const inReadme = readmeRows(readme).map((row) => row.env).sort();
  assertEquals(inReadme.length > 30, true, `only ${inReadme.length} rows read`);
  assertEquals(inReadme, configRows().map((row) => row.env).sort());
});

Deno.test("README's settings table gives each setting config's flag and default", () => {
  const readmeByEnv = new Map(readmeRows(readme).map((row) => [row.env, row]));
  const differing = configRows().filter((row) => {
    const documented = readmeByEnv.get(row.env);
    return documented !== undefined &&
      (documented.flag !== row.flag || documented.default !== row.default);
  }).map((row) => ({ config: row, readme: readmeByEnv.get(row.env) }));
  assertEquals(differing, []);
});

Deno.test("readmeRows() splits a shared row and reads a default only from backticks", () => {
  const table = [
    "## Configuration",
    "",
    "| variable | flag | meaning | default |",
    "| --- | --- | --- | --- |",
    "| `A_UID` / `_GID` | `--uid <uid>` / `--gid <gid>` | user | the runner's |",
    "| `A_PORT` | `--port <n>` | port | `0` (none) |",
    "",
    "after",
  ].join("\n");
  assertEquals(readmeRows(table), [
    { env: "A_UID", flag: "--uid <uid>", default: undefined },
    { env: "A_GID", flag: "--gid <gid>", default: undefined },
    { env: "A_PORT", flag: "--port <n>", default: "0" },
  ]);
});
