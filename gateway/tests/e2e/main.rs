//! End-to-end tests: the real gateway (in-process on port 0, or the real
//! binary as a child process), a real redis-server per test, and real HTTP
//! receivers on 127.0.0.1. One test binary, so the gateway links once.

mod api_history;
mod api_limits;
mod api_webhooks;
mod common;
mod conformance;
mod crash;
mod delivery;
mod input;
mod outage;
mod plugins;
mod ratelimit;
mod retries;
mod script_plugins;
