//! Hostile plugins fail with the exact error and never harm the host.

use std::time::Instant;

use super::*;

#[tokio::test]
async fn an_infinite_loop_times_out_at_its_budget() {
    let (p, host) = (plugins(), host());
    let handle = host.load(&p.hostile_loop, None).unwrap();
    for budget in [50, 100] {
        let started = Instant::now();
        let err = host
            .call(&handle, input(&task()), &[], limits(budget, 32))
            .await
            .unwrap_err();
        let took = started.elapsed();
        assert_eq!(err, PluginError::Timeout(Duration::from_millis(budget)));
        assert!(took >= Duration::from_millis(budget), "{took:?}");
        // The guest never returns by itself: any bound shows it was cut
        // off; this one is loose enough for a loaded machine.
        assert!(
            took < Duration::from_millis(budget + 1000),
            "stopped {took:?} after a {budget}ms budget"
        );
    }
    let err = host
        .validate_config(&handle, &config(&[("validate", "loop")]), limits(50, 32))
        .await
        .unwrap_err();
    assert_eq!(err, PluginError::Timeout(Duration::from_millis(50)));
}

#[tokio::test]
async fn a_guest_blocked_in_a_wasi_sleep_times_out_too() {
    let (p, host) = (plugins(), host());
    let handle = host.load(&p.hostile_sleep, None).unwrap();
    let started = Instant::now();
    let err = host
        .call(&handle, input(&task()), &[], limits(100, 32))
        .await
        .unwrap_err();
    assert_eq!(err, PluginError::Timeout(Duration::from_millis(100)));
    // The guest sleeps 10 s; well before that, the call was cut off.
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
}

#[tokio::test]
async fn a_memory_bomb_hits_the_memory_limit() {
    let (p, host) = (plugins(), host());
    let handle = host.load(&p.hostile_memory, None).unwrap();
    let err = host
        .call(&handle, input(&task()), &[], limits(1000, 16))
        .await
        .unwrap_err();
    assert_eq!(err, PluginError::Memory(16 << 20));
    // The host is unharmed: the next call on another plugin works.
    assert!(forwarded(run(&host, &p.template, &task(), &[]).await).0 == task());
}

#[tokio::test]
async fn a_panic_is_a_trap_carrying_the_panic_message() {
    let (p, host) = (plugins(), host());
    let handle = host.load(&p.hostile_panic, None).unwrap();
    match host.call(&handle, input(&task()), &[], PluginLimits::default()).await {
        Err(PluginError::Trap(m)) => {
            assert!(
                m.contains("hostile plugin panicked on purpose for task.completed"),
                "{m}"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn oversized_and_invalid_outputs_fail_cleanly() {
    let (p, host) = (plugins(), host());
    let handle = host.load(&p.hostile_output, None).unwrap();
    let call = |cfg: Vec<(String, String)>, max_memory_mib: u64| {
        let (host, handle) = (host.clone(), handle.clone());
        async move {
            host.call(&handle, input(&task()), &cfg, limits(2000, max_memory_mib))
                .await
        }
    };
    // Bigger than the output limit, within the memory limit.
    let err = call(config(&[("body_bytes", &(20 << 20).to_string())]), 64)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, PluginError::Guest(m) if m.contains("over the 16 MiB limit")),
        "{err:?}"
    );
    // Bigger than the memory limit: the guest cannot even build it.
    let err = call(config(&[("body_bytes", &(40 << 20).to_string())]), 32)
        .await
        .unwrap_err();
    assert_eq!(err, PluginError::Memory(32 << 20));
    let err = call(config(&[("headers", "1000")]), 32).await.unwrap_err();
    assert!(
        matches!(&err, PluginError::Guest(m) if m.contains("headers is over the limit")),
        "{err:?}"
    );
    let err = call(config(&[("header_name", "bad header")]), 32).await.unwrap_err();
    assert!(
        matches!(&err, PluginError::Guest(m) if m.contains("invalid header name")),
        "{err:?}"
    );
    match call(config(&[("error_bytes", "100000")]), 32).await {
        Err(PluginError::Guest(m)) => assert_eq!(m.len(), 1024),
        other => panic!("{other:?}"),
    }
    // A flood of logs and stdout/stderr is bounded and does not fail the call.
    let started = Instant::now();
    assert_eq!(forwarded(call(config(&[("log_lines", "20000")]), 32).await).0, task());
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
}

#[tokio::test]
async fn a_guest_cannot_touch_files() {
    let (p, host) = (plugins(), host());
    let (report, _) = forwarded(run(&host, &p.hostile_file, &task(), &[]).await);
    let report = report.as_object().unwrap();
    assert_eq!(report.len(), 5);
    for (attempt, outcome) in report {
        assert!(outcome.as_str().unwrap().starts_with("error"), "{attempt}: {outcome}");
    }
    assert!(!Path::new("/tmp/hookgate-hostile-plugin").exists());
}

#[tokio::test]
async fn a_guest_cannot_use_the_network_or_read_env_or_args() {
    let (p, host) = (plugins(), host());
    // A real listener the guest is told to connect to.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let target = listener.local_addr().unwrap().to_string();
    // The test process has variables the guest must not see.
    assert!(std::env::vars().count() > 0);
    let (report, _) = forwarded(run(&host, &p.hostile_network, &task(), &[("connect", &target)]).await);
    for attempt in ["tcp_connect", "tcp_listen", "udp_bind", "dns"] {
        let outcome = report[attempt].as_str().unwrap();
        assert!(outcome.starts_with("error"), "{attempt}: {outcome}");
    }
    assert_eq!(report["env"], json!([]));
    assert_eq!(report["args"], json!([]));
    assert!(listener.accept().is_err(), "the guest reached the listener");
}

#[tokio::test(flavor = "current_thread")]
async fn a_looping_plugin_does_not_stall_a_concurrent_healthy_call() {
    let (p, host) = (plugins(), host());
    let looping = host.load(&p.hostile_loop, None).unwrap();
    let healthy = host.load(&p.template, None).unwrap();
    let (h2, l2) = (host.clone(), looping.clone());
    // One runtime thread: the loop must yield for the healthy call to run.
    // Without yielding, the healthy call could only start once the loop's
    // 3 s budget is spent; the bound below is half of that, so a loaded
    // machine does not make this fail, and a loop that holds the thread does.
    let spinner = tokio::spawn(async move { h2.call(&l2, input(&task()), &[], limits(3000, 32)).await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let started = Instant::now();
    let verdict = host.call(&healthy, input(&task()), &[], PluginLimits::default()).await;
    let took = started.elapsed();
    assert_eq!(forwarded(verdict).0, task());
    assert!(
        took < Duration::from_millis(1500),
        "healthy call took {took:?} beside a spinning plugin"
    );
    assert!(!spinner.is_finished(), "the loop should still be running");
    assert_eq!(
        spinner.await.unwrap().unwrap_err(),
        PluginError::Timeout(Duration::from_secs(3))
    );
}
