// A hookgate plugin in JavaScript: forwards every event unchanged.
//
// handle(event, config) runs once per delivery attempt:
//   event:  { id, type, webhookId, headers: [[name, value], ...],
//             body (text), bytes (Uint8Array), data (the body parsed as JSON),
//             header(name) }
//   config: the webhook's plugin config, { key: "value" }
// and returns one of
//   event                      forward unchanged
//   { data, headers? }         forward `data` as JSON (content-type: application/json)
//   { body, headers? }         forward a string or Uint8Array body
//   drop("reason")             do not deliver (the delivery becomes "filtered")
// `headers` is either an object of changes to the incoming headers
// ({ "x-team": "billing", "x-old": null } sets one and removes one) or a
// full list of [name, value] pairs. Throw an Error to fail the attempt.

import { checkKeys } from "./hookgate.js";

export function handle(event, config) {
  return event;
}

// Called when the gateway loads the plugin for a webhook: throw to reject
// the config with a message saying why.
export function validateConfig(config) {
  // This plugin takes no configuration; reject typos early.
  checkKeys(config, []);
}
