//! `hookgate plugin run`, and the per-call overhead measurement.

use std::time::Instant;

use hookgate_testkit::TempDir;

use super::*;

/// Per-call host overhead for a 1 KiB JSON body. Run with
/// `cargo test --release -p hookgate --test plugin_host -- --ignored --nocapture overhead`.
#[tokio::test]
#[ignore = "timing measurement; run in release"]
async fn overhead() {
    let (p, host) = (plugins(), host());
    let items: Vec<Value> = (0..20)
        .map(|i| json!({"id": i, "name": format!("item {i}"), "email": "x@example.com"}))
        .collect();
    let body = json!({"task": {"id": 1, "title": "t"}, "customer": {"email": "a@b.c"}, "items": items});
    let size = serde_json::to_vec(&body).unwrap().len();
    for (name, path, cfg) in [
        ("template", &p.template, config(&[])),
        (
            "redact",
            &p.redact,
            config(&[("fields", "/customer/email,/items/0/email")]),
        ),
    ] {
        let handle = host.load(path, None).unwrap();
        let mut times = Vec::new();
        for i in 0..3000 {
            let started = Instant::now();
            let v = host.call(&handle, input(&body), &cfg, PluginLimits::default()).await;
            if i >= 500 {
                times.push(started.elapsed());
            }
            assert!(v.is_ok());
        }
        times.sort();
        let pct = |q: f64| times[((times.len() as f64) * q) as usize];
        println!(
            "{name}: body {size} B, p50 {:?}, p90 {:?}, p99 {:?}",
            pct(0.5),
            pct(0.9),
            pct(0.99)
        );
    }
}

/// `hookgate plugin run`: the real binary, its output and exit status.
#[test]
fn the_plugin_run_command_prints_the_verdict_and_exits_by_it() {
    let p = plugins();
    let dir = TempDir::new("plugin-cli");
    let event = dir.path().join("event.json");
    // Written by hand: `data` reaches the plugin byte for byte, key order included.
    let body = r#"{"type": "task.completed", "data": {"task": {"id": 7, "title": "Ship <v2>", "status": "done",
        "priority": 3, "owner": {"email": "ann@example.com"}}}}"#;
    std::fs::write(&event, body).unwrap();
    let run = |plugin: &Path, sets: &[&str]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_hookgate"));
        cmd.args(["plugin", "run"]).arg(plugin).arg("--event").arg(&event);
        for set in sets {
            cmd.args(["--set", set]);
        }
        let out = cmd
            .env("XDG_CACHE_HOME", dir.path())
            .env_remove("RUST_LOG")
            .output()
            .unwrap();
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (out.status.code(), text(&out.stdout), text(&out.stderr))
    };

    let (code, stdout, _) = run(&p.redact, &["fields=/task/owner"]);
    assert_eq!(code, Some(0), "{stdout}");
    assert!(stdout.starts_with("verdict: forward\ntime: "), "{stdout}");
    assert!(stdout.contains("\n  content-type: application/json\n"), "{stdout}");
    assert!(
        stdout.contains(r#"{"task":{"id":7,"title":"Ship <v2>","status":"done","priority":3}}"#),
        "{stdout}"
    );

    let (code, stdout, _) = run(&p.event_filter, &["field=/task/status", "op=eq", "value=open"]);
    assert_eq!(code, Some(2), "{stdout}");
    assert!(
        stdout.starts_with("verdict: drop\nreason: rule 1 did not hold"),
        "{stdout}"
    );

    let (code, _, stderr) = run(&p.event_filter, &["field=/task/status", "op=like", "value=x"]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("rejected its config: unknown op"), "{stderr}");

    let (code, _, stderr) = run(&p.hostile_panic, &[]);
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("plugin trapped") && stderr.contains("panicked on purpose"),
        "{stderr}"
    );

    std::fs::write(&event, br#"{"data": 1}"#).unwrap();
    let (code, _, stderr) = run(&p.template, &[]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("not a POST /api/events body"), "{stderr}");

    // The event inline, or on standard input.
    let inline = |event: &str, stdin: Option<&str>| {
        use std::io::Write;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_hookgate"))
            .args(["plugin", "run"])
            .arg(&p.redact)
            .args(["--event", event, "--set", "fields=/secret"])
            .env("XDG_CACHE_HOME", dir.path())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
        drop(input);
        let out = child.wait_with_output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let (code, stdout) = inline(r#"{"type": "t.x", "data": {"secret": 1, "keep": 2}}"#, None);
    assert_eq!(code, Some(0), "{stdout}");
    assert!(stdout.contains(r#"{"keep":2}"#), "{stdout}");
    let (code, stdout) = inline("-", Some(r#"{"type": "t.x", "data": {"secret": 1, "kept": 3}}"#));
    assert_eq!(code, Some(0), "{stdout}");
    assert!(stdout.contains(r#"{"kept":3}"#), "{stdout}");
}
