import { BROKER_SETTINGS, LOG_SETTINGS } from "../config/settings.ts";
import { pickSettings, section } from "./settings_options.ts";

/** How to reach the broker: every command that talks to it. */
export const BROKER_SECTION = section(
  "Broker:",
  pickSettings(BROKER_SETTINGS, [
    "amqpUrl",
    "username",
    "password",
    "passwordFile",
    "caFile",
    "connectTimeoutSeconds",
    "heartbeatSeconds",
  ]),
);

/** The names and durability shared with the hmi-server, as a client (`submit`) sees them. */
export const CLIENT_QUEUES_SECTION = section(
  "Queues:",
  pickSettings(BROKER_SETTINGS, [
    "requestType",
    "requestQueue",
    "responseExchange",
    "cancellationExchange",
    "durableQueues",
  ]),
);

/** The log settings: every command. */
export const LOGGING_SECTION = section("Logging:", LOG_SETTINGS);
