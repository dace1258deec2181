//! hookgate-bench: a load benchmark for hookgate that tells the truth.
//!
//! One run starts (or attaches to) a store (Redis, or the embedded store's
//! data folder) and a gateway, runs its own fast
//! receiver, drives `POST /api/events` at a fixed concurrency or rate, and
//! reports ingest throughput and latency, end-to-end delivery throughput and
//! lag, the gateway's CPU and peak memory, and Redis commands per delivery.
//! The same run measures this machine's loopback ceiling (a bare hyper server
//! driven by the same client code) so every throughput figure also reads as a
//! fraction of what the machine can do at all.
//!
//! Modules, by what they own:
//!
//! * [`cli`]: the command line and scenario flags.
//! * [`clock`]: one monotonic time origin shared by driver and receiver.
//! * [`http`]: the minimal HTTP/1 client and server plumbing on hyper.
//! * [`driver`]: the load generator and its per-request records.
//! * [`receiver`]: the webhook receiver: arrivals, signatures, failures.
//! * [`ceiling`]: the 204 sink and the loopback-ceiling measurement.
//! * [`redis`]: a `redis-server` child, RESP commands and `INFO` snapshots.
//! * [`cluster`]: `--store redis-cluster`: a local 3 + 3 Redis Cluster.
//! * [`redis_figures`]: commands, CPU, memory per delivery and each
//!   master's share of the commands, from every Redis node's readings.
//! * [`settle`]: waiting until the gateway records every delivery as final.
//! * [`history`]: `--history N`: the store filled with N finished
//!   deliveries before the measured phase.
//! * [`disk`]: the embedded store's data folder size through the run.
//! * [`gateway`]: the gateway config, the gateway child, API-made webhooks.
//! * [`fleet`]: `--webhooks N`: creating many webhooks, and what changes
//!   cost with them.
//! * [`port`]: free loopback ports, never one twice in a process.
//! * [`procfs`]: CPU time and peak RSS of a process from `/proc`.
//! * [`stats`]: percentiles and the joins behind the report.
//! * [`run`]: one scenario from start to report.
//! * [`report`]: the report's figures (and JSON).
//! * [`table`]: the report as a human-readable table.
//! * [`tls`]: `--tls`: the run's CA and certificates, TLS on both ends,
//!   connection and handshake counts.
//! * [`chaos`]: `hookgate-chaos`: two gateways under load while processes
//!   are killed, Redis restarts (or a cluster master fails over) and the
//!   receiver misbehaves.
//!
//! All traffic goes to loopback addresses only, and every loop is bounded in
//! count and in time.

#![forbid(unsafe_code)]

pub mod ceiling;
pub mod chaos;
pub mod cli;
pub mod clock;
pub mod cluster;
pub mod disk;
pub mod driver;
pub mod fleet;
pub mod gateway;
pub mod history;
pub mod http;
pub mod port;
pub mod procfs;
pub mod receiver;
pub mod redis;
pub mod redis_figures;
pub mod report;
pub mod run;
pub mod settle;
pub mod stats;
pub mod table;
pub mod tls;
