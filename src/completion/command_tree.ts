import type { Argument, CommandUnknownOpts, Option } from "@commander-js/extra-typings";

/** What a value is completed with: files, directories, fixed words, or nothing. */
export type ValueKind =
  | { kind: "file" }
  | { kind: "dir" }
  | { kind: "words"; words: readonly string[] }
  | { kind: "none" };

/** One option, as a completion script needs it. */
export interface OptionNode {
  /** `--amqp-url` */
  long: string;
  /** `-h`, when it has one. */
  short?: string;
  description: string;
  /** Whether it takes a value, and whether that value may be left out (`[bool]`). */
  value: "none" | "required" | "optional";
  /** How its value is completed. */
  completes: ValueKind;
}

/** One command, as a completion script needs it. */
export interface CommandNode {
  name: string;
  /** The first line of its description. */
  summary: string;
  options: OptionNode[];
  /** Its positional arguments, in order. */
  arguments: Array<{ name: string; completes: ValueKind }>;
}

/** The program: its own options and its commands. */
export interface CommandTree {
  name: string;
  options: OptionNode[];
  commands: CommandNode[];
}

// Value names that are paths to files, or to directories.
const FILE_VALUES = new Set(["file", "path", "script"]);
const DIR_VALUES = new Set(["dir"]);

/** The command tree of a commander program: what completion scripts are generated from. */
export function commandTree(program: CommandUnknownOpts): CommandTree {
  return {
    name: program.name(),
    options: visibleOptions(program),
    commands: program.commands.map((command) => ({
      name: command.name(),
      summary: command.summary() || command.description().split("\n")[0]!,
      options: visibleOptions(command),
      arguments: command.registeredArguments.map((argument) => ({
        name: argument.name(),
        completes: argumentValues(argument),
      })),
    })),
  };
}

function visibleOptions(command: CommandUnknownOpts): OptionNode[] {
  // The built-in help and version options are not in `options`: the help helper lists them.
  return command.createHelp().visibleOptions(command).flatMap((option) =>
    option.long ? [optionNode(option as Option & { long: string })] : []
  );
}

function optionNode(option: Option & { long: string }): OptionNode {
  const valueName = /[<[]([^>\]]+)[>\]]/.exec(option.flags)?.[1] ?? "";
  return {
    long: option.long,
    ...(option.short ? { short: option.short } : {}),
    description: option.description,
    value: option.required ? "required" : option.optional ? "optional" : "none",
    completes: option.argChoices
      ? { kind: "words", words: option.argChoices }
      : valueName === "bool"
      ? { kind: "words", words: ["true", "false"] }
      : valueKind(valueName),
  };
}

function argumentValues(argument: Argument): ValueKind {
  if (argument.argChoices) return { kind: "words", words: argument.argChoices };
  return valueKind(argument.name());
}

function valueKind(name: string): ValueKind {
  if (FILE_VALUES.has(name)) return { kind: "file" };
  if (DIR_VALUES.has(name)) return { kind: "dir" };
  return { kind: "none" };
}
