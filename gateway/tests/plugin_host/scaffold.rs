//! `hookgate plugin new` and `hookgate plugin run` with the real binary:
//! each language's folder, written outside the repository, builds with the
//! command the binary prints and runs unchanged; `plugin run` reports time
//! and memory and names a limit that is too small.

use std::process::{Command, Output};

use hookgate_testkit::TempDir;
use hookgate_testkit::scripts::built_script_plugins;

use super::*;

/// `XDG_CACHE_HOME` for `plugin run` whose plugin cache is the shared test
/// cache, so a component the other tests compiled is not compiled again.
fn shared_xdg_cache() -> std::path::PathBuf {
    let target = repo_root().join("target");
    let xdg = target.join("plugin-test-xdg");
    let link = xdg.join("hookgate").join("plugin-cache");
    if link.symlink_metadata().is_err() {
        std::fs::create_dir_all(link.parent().unwrap()).unwrap();
        std::fs::create_dir_all(target.join("plugin-test-cache")).unwrap();
        // Racing another test process is fine: the link is the same.
        let _ = std::os::unix::fs::symlink("../../plugin-test-cache", &link);
    }
    xdg
}

fn hookgate(args: &[&str]) -> Output {
    hookgate_in(Path::new("."), args)
}

fn hookgate_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hookgate"))
        .args(args)
        .current_dir(dir)
        .env("XDG_CACHE_HOME", shared_xdg_cache())
        .env_remove("RUST_LOG")
        .output()
        .expect("run hookgate")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Runs a shell command line as printed by `plugin new`, with a clean
/// environment for guest builds.
fn sh(line: &str) -> Output {
    Command::new("sh")
        .args(["-c", line])
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("CARGO_TARGET_DIR")
        .output()
        .expect("run sh")
}

#[test]
fn plugin_new_folders_build_anywhere_and_run_unchanged() {
    // The JS toolchain comes from npm's cache when the templates were built.
    built_script_plugins();
    let dir = TempDir::new("plugin-new");
    assert!(!dir.path().starts_with(repo_root()), "outside the repository");
    let event_data =
        json!({"task": {"id": 7, "title": "Ship it", "status": "done", "owner": {"email": "ann@example.com"}}});
    let results: Vec<(String, Output, Output)> = std::thread::scope(|scope| {
        let jobs: Vec<_> = [("rust", "my-rust"), ("js", "my-js"), ("python", "my_py")]
            .into_iter()
            .map(|(lang, name)| {
                let folder = dir.path().join(name);
                scope.spawn(move || {
                    let out = hookgate(&["plugin", "new", folder.to_str().unwrap(), "--lang", lang]);
                    let said = text(&out.stdout);
                    assert!(out.status.success(), "{lang}: {said}{}", text(&out.stderr));
                    let line_after = |label: &str| {
                        let mut lines = said.lines().skip_while(|l| !l.starts_with(label));
                        lines
                            .nth(1)
                            .unwrap_or_else(|| panic!("{lang}: no {label:?} in {said}"))
                            .trim()
                            .to_owned()
                    };
                    let build = line_after("build it:");
                    let try_it = line_after("then try it (in ");
                    let built = sh(&build);
                    assert!(
                        built.status.success(),
                        "{lang}: `{build}` failed:\n{}\n{}",
                        text(&built.stdout),
                        text(&built.stderr)
                    );
                    let args: Vec<&str> = try_it.split_whitespace().collect();
                    assert_eq!(args[..3], ["hookgate", "plugin", "run"], "{try_it}");
                    // Run where the build command left the user: in the folder.
                    (lang.to_owned(), built, hookgate_in(&folder, &args[1..]))
                })
            })
            .collect();
        jobs.into_iter().map(|j| j.join().unwrap()).collect()
    });
    for (lang, _, ran) in &results {
        let stdout = text(&ran.stdout);
        assert_eq!(ran.status.code(), Some(0), "{lang}: {stdout}{}", text(&ran.stderr));
        assert!(stdout.starts_with("verdict: forward\ntime: "), "{lang}: {stdout}");
        assert!(stdout.contains("\nmemory: "), "{lang}: {stdout}");
        let body = stdout.lines().last().unwrap();
        assert_eq!(serde_json::from_str::<Value>(body).unwrap(), event_data, "{lang}");
    }
    // The size-saving release profile came along: a pass-through Rust
    // plugin is ~50 KB with it and ~4x that without.
    let wasm = dir.path().join("my-rust/target/wasm32-wasip2/release/my_rust.wasm");
    let size = std::fs::metadata(&wasm).unwrap().len();
    assert!(size < 100_000, "{} is {size} bytes", wasm.display());
    // The README's config path is where the build wrote the component.
    let readme = std::fs::read_to_string(dir.path().join("my-rust/README.md")).unwrap();
    assert!(
        readme.contains("path = \"my-rust/target/wasm32-wasip2/release/my_rust.wasm\""),
        "{readme}"
    );
}

#[test]
fn plugin_run_reports_memory_and_names_a_limit_that_is_too_small() {
    let s = built_script_plugins();
    let dir = TempDir::new("plugin-run-limits");
    let event = dir.path().join("event.json");
    std::fs::write(
        &event,
        r#"{"type": "order.paid", "data": {"card": "4111 1111 1111 1111"}}"#,
    )
    .unwrap();
    let event = event.to_str().unwrap();
    let mask = s.mask_py.to_str().unwrap();
    let out = hookgate(&["plugin", "run", mask, "--event", event, "--timeout", "5s"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains("\nmemory: ") && stdout.contains(" MiB (limit 32 MiB)\n"),
        "{stdout}"
    );
    assert!(stdout.ends_with("{\"card\":\"**** **** **** 1111\"}\n"), "{stdout}");

    let pd = s.pagerduty_js.to_str().unwrap();
    let key = "routing_key=0123456789abcdef0123456789abcdef";
    let out = hookgate(&["plugin", "run", pd, "--event", event, "--set", key]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("\n  x-pagerduty-action: trigger\n"), "{stdout}");
    let alert: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(alert["payload"]["class"], "order.paid");
    let out = hookgate(&["plugin", "run", pd, "--event", event, "--set", "routing_key=short"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("rejected its config: routing_key is required"));

    let js = s.template_js.to_str().unwrap();
    let out = hookgate(&["plugin", "run", js, "--event", event, "--max-memory", "4MiB"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("memory limit of 4 MiB (its `max_memory` limit"),
        "{stderr}"
    );

    let out = hookgate(&["plugin", "run", js, "--event", event, "--max-memory", "lots"]);
    assert_eq!(out.status.code(), Some(2), "a usage error");
    assert!(text(&out.stderr).contains("invalid size \"lots\""));
}
