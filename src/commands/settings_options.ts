import type { Command } from "@commander-js/extra-typings";
import type { SettingGroup } from "../config.ts";

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/**
 * Adds one command-line option per setting, each documented with its environment variable
 * and default (a secret's default is never shown).
 */
export function addSettingOptions<C extends Command<unknown[], Record<string, unknown>>>(
  command: C,
  ...groups: SettingGroup[]
): C {
  for (const group of groups) {
    for (const spec of Object.values(group)) {
      const shownDefault = spec.secret || spec.default === undefined ||
          (Array.isArray(spec.default) && spec.default.length === 0) || spec.default === ""
        ? ""
        : `, default ${JSON.stringify(spec.default)}`;
      const description = `${spec.description} (env ${spec.env}${shownDefault})`;
      if (spec.repeatable) command.option(spec.flag, description, collect, [] as string[]);
      else command.option(spec.flag, description);
    }
  }
  return command;
}
