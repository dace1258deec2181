//! The short chaos suite (`hookgate-chaos --short`, run by `.ci/run`
//! through `cargo test --workspace`): two real gateway processes (the debug
//! build of this workspace) on a real redis-server, a steady producer and a
//! real receiver, while gateways are killed with SIGKILL, Redis is killed
//! and restarted, a Redis Cluster master is killed (its replica takes over
//! and it rejoins as a replica), and the receiver misbehaves. Nothing
//! accepted may be lost, every backlog must drain by itself, and while
//! Redis is down the API must answer 503 with `Retry-After` rather than
//! hang. The full suite is `hookgate-chaos` (BENCHMARKS.md).

use std::path::PathBuf;

use clap::Parser;
use hookgate_bench::chaos::{ChaosArgs, Scenario, run_scenario};

/// `target/<profile>/hookgate`, next to this test's own folder.
fn gateway_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("the test knows its path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("tests run from target/<profile>/deps");
    let bin = profile_dir.join("hookgate");
    assert!(
        bin.is_file(),
        "{} not found: the chaos test runs the gateway binary; build it with `cargo build -p hookgate` \
         (`cargo test --workspace` does)",
        bin.display()
    );
    bin
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_chaos_suite_loses_nothing() {
    let bin = gateway_bin();
    let args = ChaosArgs::parse_from(["hookgate-chaos", "--short", "--gateway-bin", bin.to_str().unwrap()]);
    for scenario in [
        Scenario::GatewayKill,
        Scenario::RedisRestart,
        Scenario::ReceiverFaults,
        Scenario::ClusterFailover,
    ] {
        let report = run_scenario(&args, scenario).await.expect("the scenario runs");
        println!("{report}");
        assert!(report.accepted > 0, "{report}");
        assert_eq!(report.given_up, 0, "every event was accepted in the end: {report}");
        assert_eq!(report.lost, 0, "nothing accepted may be lost: {report}");
        assert!(report.drain_seconds.is_some(), "the backlog drains by itself: {report}");
        assert_eq!(report.answers_503_without_retry_after, 0, "{report}");
        assert!(!report.needed_a_person, "{report}");
        if scenario == Scenario::RedisRestart {
            assert!(
                report.answers.get("http 503").copied().unwrap_or(0) > 0,
                "the outage was seen by the API: {report}"
            );
            assert!(
                report.max_503_ms < 3_000,
                "503s come quickly, not after a hang: {report}"
            );
        }
        if scenario == Scenario::ClusterFailover {
            assert!(
                report.chaos.contains("its replica took over") && report.chaos.contains("rejoined as a replica"),
                "{report}"
            );
            // Ingest has a deadline (1.5 s for the rate limit and again for
            // the write): no post waits for the cluster client's 5 s.
            assert!(
                !report.answers.contains_key("timeout"),
                "every post got an answer while the master was down: {report}"
            );
        }
        if scenario == Scenario::GatewayKill {
            assert!(
                report.chaos.starts_with(|c: char| c.is_ascii_digit() && c != '0'),
                "{report}"
            );
        }
    }
}
