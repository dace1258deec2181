//! End-to-end tests: the real gateway (in-process on port 0, or the real
//! binary as a child process), a real redis-server per test, and real HTTP
//! receivers on 127.0.0.1. One test binary, so the gateway links once.

#![forbid(unsafe_code)]

mod api_errors;
mod api_history;
mod api_limits;
mod api_webhooks;
mod breaker;
mod cluster;
mod common;
mod conformance;
mod crash;
mod delivery;
mod docs;
mod edge;
mod egress;
mod embedded;
mod input;
mod openapi;
mod outage;
mod plugins;
mod ratelimit;
mod receive;
mod redis_tls;
mod retries;
mod schema;
mod script_plugins;
mod stats;
mod traces;
mod transfer;
mod webhook_fleet;
