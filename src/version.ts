/** The program's version, printed by `--version` and sent as the connection's client property. */
export const VERSION = "0.1.0";
