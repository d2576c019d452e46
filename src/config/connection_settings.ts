import { type BrokerConfig, ConfigError } from "./settings.ts";
import { errorMessage } from "../util/async.ts";
import { type BrokerEndpoint, brokerEndpoints } from "./amqp_url.ts";

/** What a connection needs, read from the broker settings (and the files they name). */
export interface ConnectionSettings {
  /** The addresses, in order, completed. */
  endpoints: BrokerEndpoint[];
  /** Limit of one attempt on one address. */
  connectTimeoutMs: number;
  /** PEM certificates of `--mq-ca-file`, if given. */
  ca?: string[];
  /** Every password in use, for the logger to hide. */
  secrets: string[];
}

const DEFAULT_PASSWORD = "guest";

/**
 * Reads the password from `TERARIUM_MQ_PASSWORD_FILE` (the Kubernetes-secret convention: the
 * file's contents, final newline dropped) or `TERARIUM_MQ_PASSWORD`, never both.
 *
 * @throws {ConfigError} when both are given, or the file cannot be read or is empty
 */
export function brokerPassword(config: Pick<BrokerConfig, "password" | "passwordFile">): string {
  if (config.passwordFile === undefined) return config.password ?? DEFAULT_PASSWORD;
  if (config.password !== undefined) {
    throw new ConfigError(
      "Invalid settings --mq-password and --mq-password-file (TERARIUM_MQ_PASSWORD and TERARIUM_MQ_PASSWORD_FILE): give one of them",
    );
  }
  const password = readSetting(
    config.passwordFile,
    "--mq-password-file (TERARIUM_MQ_PASSWORD_FILE)",
  )
    .replace(/\r?\n$/, "");
  if (password === "") {
    throw new ConfigError(
      `Invalid setting --mq-password-file (TERARIUM_MQ_PASSWORD_FILE): ${
        JSON.stringify(config.passwordFile)
      } is empty`,
    );
  }
  return password;
}

function readSetting(path: string, setting: string): string {
  try {
    return Deno.readTextFileSync(path);
  } catch (error) {
    throw new ConfigError(
      `Invalid setting ${setting}: cannot read ${JSON.stringify(path)}: ${errorMessage(error)}`,
    );
  }
}

/**
 * The connection settings of `config`: addresses completed with the credentials, the CA
 * certificates, the time limit.
 *
 * @param config the resolved broker settings
 * @throws {ConfigError} when a file cannot be read or the password is given twice
 */
export function connectionSettings(config: BrokerConfig): ConnectionSettings {
  const password = brokerPassword(config);
  const endpoints = brokerEndpoints(config.amqpUrl, { username: config.username, password }, {
    heartbeatSeconds: config.heartbeatSeconds,
  });
  const secrets = [...new Set(endpoints.map((endpoint) => endpoint.password))]
    .filter((secret) => secret !== "")
    .flatMap((secret) => [secret, encodeURIComponent(secret)]);
  const settings: ConnectionSettings = {
    endpoints,
    connectTimeoutMs: config.connectTimeoutSeconds * 1000,
    secrets,
  };
  if (config.caFile !== undefined) {
    settings.ca = [readSetting(config.caFile, "--mq-ca-file (TERARIUM_MQ_CA_FILE)")];
  }
  return settings;
}
