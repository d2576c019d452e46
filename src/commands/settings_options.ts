import type { Command, InferOptions, OptionValues } from "@commander-js/extra-typings";
import type { SettingGroup, SettingSpec } from "../config/settings.ts";

// Nothing: the start of an intersection of option types.
type NoOptions = Record<never, never>;

// The raw value commander gives a setting's option, by its key, as its flag spells it.
type SpecOptions<S extends SettingSpec> = S extends { repeatable: true }
  ? InferOptions<NoOptions, S["flag"], string[], string[] | undefined, false>
  : InferOptions<NoOptions, S["flag"], undefined, undefined, false>;

type UnionToIntersection<U> = (U extends unknown ? (value: U) => void : never) extends
  (value: infer I) => void ? I : never;

type GroupOptions<G extends SettingGroup> = UnionToIntersection<
  { [K in keyof G]: SpecOptions<G[K]> }[keyof G]
>;

/** Settings shown together in `--help` under one heading. */
export interface SettingSection<G extends SettingGroup = SettingGroup> {
  /** The heading, e.g. `Broker:`. */
  heading: string;
  settings: G;
}

/** The options a list of sections adds to a command, typed as commander parses them. */
export type SectionsOptions<Sections extends readonly SettingSection[]> = Sections extends
  readonly [infer First extends SettingSection, ...infer Rest extends readonly SettingSection[]]
  ? GroupOptions<First["settings"]> & SectionsOptions<Rest>
  : NoOptions;

/**
 * The settings of `group` named by `keys`, for a command that uses only those (`cancel` needs
 * no request queue).
 */
export function pickSettings<G extends SettingGroup, const K extends keyof G>(
  group: G,
  keys: readonly K[],
): Pick<G, K> {
  const picked = {} as Pick<G, K>;
  for (const key of keys) picked[key] = group[key];
  return picked;
}

/** A help section of settings. */
export function section<const G extends SettingGroup>(
  heading: string,
  settings: G,
): SettingSection<G> {
  return { heading, settings };
}

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/**
 * Adds one command-line option per setting, each documented with its environment variable
 * and default (a secret's default is never shown), under the heading of its section.
 */
export function addSettingOptions<
  Args extends unknown[],
  Opts extends OptionValues,
  const Sections extends readonly SettingSection[],
>(
  command: Command<Args, Opts>,
  ...sections: Sections
): Command<Args, Opts & SectionsOptions<Sections>> {
  for (const { heading, settings } of sections) {
    command.optionsGroup(heading);
    for (const spec of Object.values(settings)) {
      const description = `${spec.description} (env ${spec.env}${shownDefault(spec)})`;
      // No default value given to commander: it would show `(default: [])`, and the
      // environment variable must win over an absent flag.
      if (spec.repeatable) command.option(spec.flag, description, collect);
      else command.option(spec.flag, description);
    }
  }
  // Back to the default heading, which `--help` joins.
  command.optionsGroup("Options:");
  // Each option was added above, one per setting, as SectionsOptions spells it.
  return command as Command<Args, Opts & SectionsOptions<Sections>>;
}

function shownDefault(spec: SettingSpec): string {
  const hidden = spec.secret || spec.default === undefined || spec.default === "" ||
    (Array.isArray(spec.default) && spec.default.length === 0);
  return hidden ? "" : `, default ${JSON.stringify(spec.default)}`;
}
