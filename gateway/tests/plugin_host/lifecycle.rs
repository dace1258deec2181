//! Loading: hot reload, sha256 pins, the on-disk cache, files that are not plugins.

use std::path::PathBuf;
use std::time::Instant;

use hookgate::plugin::CacheOutcome;
use hookgate_testkit::TempDir;

use super::*;

fn copy_to(from: &Path, dir: &TempDir, name: &str) -> PathBuf {
    let to = dir.path().join(name);
    std::fs::copy(from, &to).unwrap();
    to
}

/// Replaces a file the way a deploy would: write a new file, rename over.
fn replace(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[tokio::test]
async fn a_changed_file_is_reloaded_and_a_broken_one_keeps_the_old_version() {
    let (p, host) = (plugins(), host());
    host.set_reload_interval(Duration::ZERO);
    let dir = TempDir::new("plugin-reload");
    let path = copy_to(&p.template, &dir, "hook.wasm");
    let handle = host.load(&path, None).unwrap();
    assert_eq!(
        forwarded(host.call(&handle, input(&task()), &[], PluginLimits::default()).await).0,
        task()
    );

    replace(&path, &std::fs::read(&p.cloudevents).unwrap());
    let (body, _) = forwarded(host.call(&handle, input(&task()), &[], PluginLimits::default()).await);
    assert_eq!(body["specversion"], "1.0", "the next call runs the new version");

    replace(&path, b"\0asm garbage");
    let (body, _) = forwarded(host.call(&handle, input(&task()), &[], PluginLimits::default()).await);
    assert_eq!(body["specversion"], "1.0", "a broken file keeps the previous version");
    // Overwritten in place (same inode) works too.
    std::fs::write(&path, std::fs::read(&p.template).unwrap()).unwrap();
    assert_eq!(
        forwarded(host.call(&handle, input(&task()), &[], PluginLimits::default()).await).0,
        task()
    );
}

#[tokio::test]
async fn a_sha256_pin_refuses_other_content_including_on_reload() {
    let (p, host) = (plugins(), host());
    host.set_reload_interval(Duration::ZERO);
    let dir = TempDir::new("plugin-pin");
    let path = copy_to(&p.template, &dir, "pinned.wasm");
    let wrong = "00".repeat(32);
    match host.load(&path, Some(&wrong)) {
        Err(PluginError::Load(m)) => assert!(m.contains("sha256 mismatch"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(host.load(&path, Some("abc")), Err(PluginError::Config(_))));
    let right = hex::encode(hookgate::plugin::cache::sha256(&std::fs::read(&path).unwrap()));
    let handle = host.load(&path, Some(&right.to_uppercase())).unwrap();
    assert_eq!(handle.sha256(), right);
    // A different file under the pin is not picked up.
    replace(&path, &std::fs::read(&p.cloudevents).unwrap());
    assert_eq!(
        forwarded(host.call(&handle, input(&task()), &[], PluginLimits::default()).await).0,
        task()
    );
    assert_eq!(handle.sha256(), right);
}

#[tokio::test]
async fn a_second_host_loads_from_the_on_disk_cache() {
    let p = plugins();
    let cache = TempDir::new("plugin-cache");
    let sha = hookgate::plugin::cache::sha256(&std::fs::read(&p.redact).unwrap());
    let first = PluginHost::new(cache.path(), 2).unwrap();
    let started = Instant::now();
    let handle = first.load(&p.redact, None).unwrap();
    let compile = started.elapsed();
    assert_eq!(handle.cache_outcome(), CacheOutcome::Compiled);
    let file = first.cache_path(&sha);
    assert!(file.is_file(), "{} missing", file.display());
    drop((handle, first));

    let second = PluginHost::new(cache.path(), 2).unwrap();
    let started = Instant::now();
    let handle = second.load(&p.redact, None).unwrap();
    let load = started.elapsed();
    assert_eq!(handle.cache_outcome(), CacheOutcome::Hit);
    assert!(load < compile / 4, "cached load {load:?} vs compile {compile:?}");
    let (body, _) = forwarded(
        second
            .call(
                &handle,
                input(&task()),
                &config(&[("fields", "/task")]),
                PluginLimits::default(),
            )
            .await,
    );
    assert_eq!(body, json!({}));

    // A damaged cache file is refused and rewritten, never loaded.
    let mut bytes = std::fs::read(&file).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&file, &bytes).unwrap();
    let third = PluginHost::new(cache.path(), 2).unwrap();
    assert_eq!(
        third.load(&p.redact, None).unwrap().cache_outcome(),
        CacheOutcome::Compiled
    );
}

#[tokio::test]
async fn files_that_are_not_plugins_are_refused() {
    let host = host();
    let dir = TempDir::new("plugin-bad");
    for (name, bytes, needle) in [
        ("core.wasm", &b"\0asm\x01\0\0\0"[..], "not a component"),
        ("junk.wasm", &b"hello"[..], "not a valid plugin component"),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        match host.load(&path, None) {
            Err(PluginError::Load(m)) => assert!(m.contains(needle), "{m}"),
            other => panic!("{other:?}"),
        }
    }
    assert!(matches!(
        host.load(&dir.path().join("missing.wasm"), None),
        Err(PluginError::Load(_))
    ));
}
