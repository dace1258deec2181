// pagerduty-js: turns a hookgate event into a PagerDuty Events API v2
// alert (https://developer.pagerduty.com/docs/events-api-v2/trigger-events/),
// so a webhook can point straight at https://events.pagerduty.com/v2/enqueue.
//
// config:
//   routing_key    required: the integration key of the PagerDuty service
//   summary_field  optional: JSON pointer into the event data for the alert
//                  summary (e.g. "/task/title"); default: "<type> <id>"
//   severity       optional: critical | error | warning | info (default error)
//   severity_field optional: JSON pointer to a severity in the data; a value
//                  that is not a PagerDuty severity falls back to `severity`
//   resolve_types  optional: comma-separated event types that resolve the
//                  alert instead of triggering it (e.g. "task.reopened")
//   source         optional: the alert's source (default "hookgate/<webhook id>")
//
// The dedup key is the value at `dedup_field` (a JSON pointer; default: the
// event id), so a resolve event can close the alert its trigger opened.

import { checkKeys } from "./hookgate.js";

const SEVERITIES = ["critical", "error", "warning", "info"];
const KEYS = ["routing_key", "summary_field", "severity", "severity_field", "resolve_types", "source", "dedup_field"];
// PagerDuty refuses summaries over 1024 characters.
const MAX_SUMMARY = 1024;

export function validateConfig(config) {
  checkKeys(config, KEYS);
  if (!config.routing_key || !/^[A-Za-z0-9]{32}$/.test(config.routing_key)) {
    throw new Error("routing_key is required: the 32-character integration key of a PagerDuty service");
  }
  if (config.severity !== undefined && !SEVERITIES.includes(config.severity)) {
    throw new Error(`severity must be one of ${SEVERITIES.join(", ")}, not "${config.severity}"`);
  }
  for (const key of ["summary_field", "severity_field", "dedup_field"]) {
    if (config[key] !== undefined) parsePointer(config[key], key);
  }
}

export function handle(event, config) {
  const data = event.data;
  const action = resolveTypes(config).includes(event.type) ? "resolve" : "trigger";
  const dedup = config.dedup_field ? lookup(data, config.dedup_field, "dedup_field") : event.id;
  if (dedup === undefined || dedup === null || dedup === "") {
    throw new Error(`dedup_field ${config.dedup_field} is missing from the event data`);
  }
  const alert = {
    routing_key: config.routing_key,
    event_action: action,
    dedup_key: String(dedup),
  };
  if (action === "trigger") {
    alert.payload = {
      summary: summary(event, data, config),
      source: config.source || `hookgate/${event.webhookId}`,
      severity: severity(data, config),
      component: event.type.split(".")[0],
      class: event.type,
      custom_details: data,
    };
  }
  return { data: alert, headers: { "x-pagerduty-action": action } };
}

function resolveTypes(config) {
  return (config.resolve_types || "")
    .split(",")
    .map((t) => t.trim())
    .filter((t) => t.length > 0);
}

function summary(event, data, config) {
  let text = `${event.type} ${event.id}`;
  if (config.summary_field) {
    const value = lookup(data, config.summary_field, "summary_field");
    if (value !== undefined && value !== null && value !== "") {
      text = typeof value === "string" ? value : JSON.stringify(value);
    }
  }
  return text.length > MAX_SUMMARY ? `${text.slice(0, MAX_SUMMARY - 1)}…` : text;
}

function severity(data, config) {
  const fallback = config.severity || "error";
  if (!config.severity_field) return fallback;
  const value = lookup(data, config.severity_field, "severity_field");
  return typeof value === "string" && SEVERITIES.includes(value.toLowerCase()) ? value.toLowerCase() : fallback;
}

// RFC 6901 JSON pointer: "" is the whole document, "/a/0/b" a path.
function parsePointer(pointer, key) {
  if (pointer === "") return [];
  if (!pointer.startsWith("/")) {
    throw new Error(`${key} must be a JSON pointer starting with "/", not "${pointer}"`);
  }
  return pointer
    .slice(1)
    .split("/")
    .map((part) => part.replace(/~1/g, "/").replace(/~0/g, "~"));
}

function lookup(data, pointer, key) {
  let value = data;
  for (const part of parsePointer(pointer, key)) {
    if (value === null || typeof value !== "object") return undefined;
    value = Array.isArray(value) ? value[Number(part)] : value[part];
  }
  return value;
}
