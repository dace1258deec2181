// The hookgate plugin runtime for JavaScript: turns the component-model
// calls of the `hookgate:plugin@0.1.0` world (wit/plugin.wit) into plain
// JavaScript objects for `handle(event, config)` and `validateConfig(config)`,
// and the value `handle` returns into a verdict. A thrown error becomes the
// plugin's error: the delivery attempt fails with its message.
//
// You do not need to edit this file; write your plugin in src/plugin.js.

import { log as hostLog } from "hookgate:plugin/host@0.1.0";

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/** Write a line to the gateway log (rate-limited and truncated by the host). */
export const log = {
  trace: (message) => hostLog("trace", String(message)),
  debug: (message) => hostLog("debug", String(message)),
  info: (message) => hostLog("info", String(message)),
  warn: (message) => hostLog("warn", String(message)),
  error: (message) => hostLog("error", String(message)),
};

/** Do not deliver: the delivery becomes `filtered` with this reason. */
export function drop(reason) {
  return { drop: String(reason) };
}

/**
 * The event a plugin sees. `data` is the body parsed as JSON (parsed on
 * first use; it throws if the body is not JSON), `body` the body as text,
 * `bytes` the raw body, `headers` the ordered [name, value] pairs.
 */
class PluginEvent {
  #bytes;
  #text;
  #data;
  #parsed = false;

  constructor(wit) {
    this.id = wit.id;
    this.type = wit.eventType;
    this.webhookId = wit.webhookId;
    this.headers = wit.headers.map(([name, value]) => [name, value]);
    this.#bytes = ArrayBuffer.isView(wit.body) ? wit.body : Uint8Array.from(wit.body);
  }

  get bytes() {
    return this.#bytes;
  }

  get body() {
    if (this.#text === undefined) {
      try {
        this.#text = decoder.decode(this.#bytes);
      } catch {
        throw new Error("the event body is not UTF-8 text; use event.bytes");
      }
    }
    return this.#text;
  }

  get data() {
    if (!this.#parsed) {
      try {
        this.#data = JSON.parse(this.body);
      } catch (e) {
        throw new Error(`the event body is not JSON: ${e.message}`);
      }
      this.#parsed = true;
    }
    return this.#data;
  }

  /** The first header with this name (case-insensitive), or undefined. */
  header(name) {
    const wanted = name.toLowerCase();
    const found = this.headers.find(([n]) => n.toLowerCase() === wanted);
    return found ? found[1] : undefined;
  }
}

function configObject(pairs) {
  const config = Object.create(null);
  for (const [key, value] of pairs) {
    if (!(key in config)) config[key] = value;
  }
  return Object.freeze(config);
}

function setHeader(list, name, value) {
  const lower = name.toLowerCase();
  const kept = list.filter(([n]) => n.toLowerCase() !== lower);
  if (value !== null && value !== undefined) kept.push([name, String(value)]);
  return kept;
}

/** Applies `headers` from a forward result to the incoming list. */
function resolveHeaders(incoming, headers, json) {
  let list = incoming;
  if (json) list = setHeader(list, "content-type", "application/json");
  if (headers === undefined || headers === null) return list;
  if (Array.isArray(headers)) {
    return headers.map((pair) => {
      if (!Array.isArray(pair) || pair.length !== 2) {
        throw new Error("headers given as a list must be [name, value] pairs");
      }
      return [String(pair[0]), String(pair[1])];
    });
  }
  if (typeof headers !== "object") {
    throw new Error("headers must be an object of changes or a list of [name, value] pairs");
  }
  for (const [name, value] of Object.entries(headers)) {
    list = setHeader(list, name, value);
  }
  return list;
}

function toBytes(body) {
  if (typeof body === "string") return encoder.encode(body);
  if (ArrayBuffer.isView(body)) return new Uint8Array(body.buffer, body.byteOffset, body.byteLength);
  if (body instanceof ArrayBuffer) return new Uint8Array(body);
  throw new Error("body must be a string or a Uint8Array; use { data } to send JSON");
}

/** The WIT verdict for what `handle` returned. */
function verdictOf(result, incoming) {
  if (result === null || typeof result !== "object") {
    throw new Error(
      "handle must return { drop: reason }, { data, headers? }, { body, headers? } or the event itself, not " +
        (result === null ? "null" : typeof result),
    );
  }
  if ("drop" in result) {
    return { tag: "drop", val: String(result.drop) };
  }
  if ("body" in result) {
    const headers = resolveHeaders(incoming, result.headers, false);
    return { tag: "forward", val: { body: toBytes(result.body), headers } };
  }
  if ("data" in result) {
    const text = JSON.stringify(result.data);
    if (text === undefined) throw new Error("data cannot be serialised as JSON");
    const headers = resolveHeaders(incoming, result.headers, true);
    return { tag: "forward", val: { body: encoder.encode(text), headers } };
  }
  throw new Error("handle must return { drop: reason }, { data, headers? }, { body, headers? } or the event itself");
}

function message(error) {
  if (error instanceof Error) return error.message || error.name;
  return String(error);
}

/**
 * The component's exports for a plugin module with `handle(event, config)`
 * and, optionally, `validateConfig(config)`.
 */
export function exportPlugin(plugin) {
  if (typeof plugin.handle !== "function") {
    throw new Error("src/plugin.js must export a function handle(event, config)");
  }
  return {
    handle(witEvent, witConfig) {
      try {
        const event = new PluginEvent(witEvent);
        const result = plugin.handle(event, configObject(witConfig));
        if (result !== null && typeof result === "object" && typeof result.then === "function") {
          // An async handle: the component runs the event loop until it settles.
          return result.then(
            (settled) => verdictOf(settled, witEvent.headers),
            (e) => {
              throw message(e);
            },
          );
        }
        return verdictOf(result, witEvent.headers);
      } catch (e) {
        throw message(e);
      }
    },
    validateConfig(witConfig) {
      if (typeof plugin.validateConfig !== "function") return;
      try {
        plugin.validateConfig(configObject(witConfig));
      } catch (e) {
        throw message(e);
      }
    },
  };
}

/**
 * Throws naming the first key of `config` that is not in `known`: catches
 * typos in `validateConfig`.
 */
export function checkKeys(config, known) {
  for (const key of Object.keys(config)) {
    if (!known.includes(key)) {
      throw new Error(
        known.length ? `unknown config key "${key}" (known: ${known.join(", ")})` : `unknown config key "${key}" (this plugin takes none)`,
      );
    }
  }
}
