import { Argument, Command, type CommandUnknownOpts } from "@commander-js/extra-typings";
import { bashCompletion, commandTree, fishCompletion, zshCompletion } from "../completion/mod.ts";
import { writeAll } from "../local/output.ts";

/** The shells `completion` writes a script for. */
export const COMPLETION_SHELLS = ["bash", "zsh", "fish"] as const;

const COMPLETION_EXAMPLES = `
Examples:
  # bash: now, and in every new shell
  source <(taskrunner completion bash)
  echo 'source <(taskrunner completion bash)' >> ~/.bashrc

  # zsh (after compinit)
  source <(taskrunner completion zsh)

  # fish
  taskrunner completion fish > ~/.config/fish/completions/taskrunner.fish
`;

/**
 * The `completion` command: prints the completion script of a shell, generated from the
 * commands and options of `program` (which it completes too).
 */
export function completionCommand(program: CommandUnknownOpts) {
  return new Command("completion")
    .description("Print the shell completion script of taskrunner: bash, zsh or fish")
    .addArgument(new Argument("<shell>", "the shell").choices(COMPLETION_SHELLS))
    .addHelpText("after", COMPLETION_EXAMPLES)
    .exitOverride()
    .action(async (shell) => {
      const tree = commandTree(program);
      const script = shell === "bash"
        ? bashCompletion(tree)
        : shell === "zsh"
        ? zshCompletion(tree)
        : fishCompletion(tree);
      await writeAll(Deno.stdout, new TextEncoder().encode(script));
    });
}
