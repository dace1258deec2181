// The component's entry point: wires src/plugin.js to the exports of the
// hookgate:plugin@0.1.0 world. You do not need to edit this file.

import * as plugin from "./plugin.js";
import { exportPlugin } from "./hookgate.js";

const exported = exportPlugin(plugin);

export function handle(event, config) {
  return exported.handle(event, config);
}

export function validateConfig(config) {
  return exported.validateConfig(config);
}
