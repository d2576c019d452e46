import type { Command, InferOptions, OptionValues } from "@commander-js/extra-typings";
import type { SettingGroup, SettingSpec } from "../config.ts";

// Nothing: the start of an intersection of option types.
type NoOptions = Record<never, never>;

// The raw value commander gives a setting's option, by its key, as its flag spells it.
type SpecOptions<S extends SettingSpec> = S extends { repeatable: true }
  ? InferOptions<NoOptions, S["flag"], string[], string[], false>
  : InferOptions<NoOptions, S["flag"], undefined, undefined, false>;

type UnionToIntersection<U> = (U extends unknown ? (value: U) => void : never) extends
  (value: infer I) => void ? I : never;

type GroupOptions<G extends SettingGroup> = UnionToIntersection<
  { [K in keyof G]: SpecOptions<G[K]> }[keyof G]
>;

/** The options a list of settings groups adds to a command, typed as commander parses them. */
export type SettingsOptions<Groups extends readonly SettingGroup[]> = Groups extends
  readonly [infer First extends SettingGroup, ...infer Rest extends readonly SettingGroup[]]
  ? GroupOptions<First> & SettingsOptions<Rest>
  : NoOptions;

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/**
 * Adds one command-line option per setting, each documented with its environment variable
 * and default (a secret's default is never shown).
 */
export function addSettingOptions<
  Args extends unknown[],
  Opts extends OptionValues,
  const Groups extends readonly SettingGroup[],
>(
  command: Command<Args, Opts>,
  ...groups: Groups
): Command<Args, Opts & SettingsOptions<Groups>> {
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
  // Each option was added above, one per setting, as SettingsOptions spells it.
  return command as Command<Args, Opts & SettingsOptions<Groups>>;
}
