//! The embedded store under faults: `kill -9` of a real `hookgate serve`
//! with hundreds of deliveries pending, a second process on the same data
//! folder, a damaged data file, and a full disk.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hookgate::store::embedded::EmbeddedStore;
use hookgate::store::{Records, Status};
use hookgate_testkit::{Receiver, Reply, TempDir, wait_until};

use crate::common::*;

/// Posts `n` events, 16 at a time; returns the delivery ids of the 202s.
async fn post_many(client: &reqwest::Client, url: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for chunk in (0..n).collect::<Vec<_>>().chunks(16) {
        let mut calls = tokio::task::JoinSet::new();
        for &i in chunk {
            let (client, url) = (client.clone(), url.to_owned());
            calls.spawn(async move {
                let event = serde_json::json!({"type": "order.created", "data": {"i": i}});
                post_event_to(&client, &url, &event).await
            });
        }
        for got in calls.join_all().await {
            ids.extend(got);
        }
    }
    ids
}

/// A way to damage a data file.
type Damage = fn(&mut Vec<u8>);

/// `hookgate serve` on `config`, run to its exit: (exit code, stderr).
fn serve_until_exit(config: &Path) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_hookgate"))
        .arg("serve")
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_with_hundreds_pending_then_restart_delivers_every_accepted_event() {
    let db = TestStore::start(Backend::Embedded);
    let rx = Receiver::start().await;
    rx.set_default(Reply::status(200).delay(Duration::from_millis(40)));
    let delivery = fast_delivery("concurrency = 8\ntimeout = \"1s\"\n");
    let hooks = [
        webhook("a", &rx.url("/a"), &["order.*"], ""),
        webhook("b", &rx.url("/b"), &["*"], ""),
    ]
    .concat();
    let (toml, folder) = config_toml(&db, &delivery, &hooks);
    let dir = Arc::new(TempDir::new("embedded-crash"));
    let mut gw = GatewayProcess::spawn(&toml, dir.clone()).await;
    let client = http();
    let accepted = post_many(&client, &gw.url("/api/events"), 300).await;
    assert_eq!(accepted.len(), 600);
    rx.wait_for("/a", 10, Duration::from_secs(20)).await;
    gw.kill9();
    let before = rx.received().len();
    assert!(
        before < accepted.len() / 2,
        "the kill must leave hundreds pending ({before} done)"
    );

    // Requests the dead process sent have all been recorded by now.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let restart_at = Instant::now();
    let mut restarted = GatewayProcess::spawn(&toml, dir.clone()).await;
    let want: std::collections::HashSet<&String> = accepted.iter().collect();
    wait_until(Duration::from_secs(60), "every accepted delivery to arrive", || async {
        let seen: std::collections::HashSet<String> = rx
            .received()
            .iter()
            .filter_map(|r| r.header("x-delivery-id").map(str::to_owned))
            .collect();
        want.iter().all(|id| seen.contains(*id)).then_some(())
    })
    .await;
    // A delivery the killed process sent but had not recorded is due again
    // and sent once more by this one, possibly after every id was seen:
    // wait until nothing is queued or in flight, so every outcome is in.
    wait_until(Duration::from_secs(60), "the queues to empty", || async {
        let text = client
            .get(restarted.url("/metrics"))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        ["pending", "failed", "in_flight"]
            .iter()
            .all(|s| text.contains(&format!("hookgate_queue_depth{{status=\"{s}\"}} 0\n")))
            .then_some(())
    })
    .await;
    let status = restarted.terminate(Duration::from_secs(20));
    assert!(status.success(), "{}", restarted.log_text());
    assert!(
        !restarted.log_text().contains("ERROR"),
        "the store opened cleanly after the kill:\n{}",
        restarted.log_text()
    );

    // Duplicates only for deliveries in flight at the kill: each delivery
    // arrived at most once from each process, and only ones the dead
    // process had started arrived twice.
    let mut from_old: HashMap<String, usize> = HashMap::new();
    let mut from_new: HashMap<String, usize> = HashMap::new();
    for r in rx.received() {
        let id = r.header("x-delivery-id").unwrap().to_owned();
        assert!(want.contains(&id), "unknown delivery {id}");
        let side = if r.at < restart_at {
            &mut from_old
        } else {
            &mut from_new
        };
        *side.entry(id).or_default() += 1;
    }
    assert!(from_old.values().chain(from_new.values()).all(|n| *n == 1));
    let twice = from_new.keys().filter(|id| from_old.contains_key(*id)).count();
    assert!(twice <= 8 + 64, "{twice} duplicates: more than were in flight");
    let store = EmbeddedStore::open(Path::new(&folder), Duration::from_secs(3600)).unwrap();
    for id in &accepted {
        let rec = store.delivery(id).await.unwrap().unwrap();
        assert_eq!(rec.status, Status::Succeeded, "{id}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_process_on_the_same_folder_exits_at_once_naming_the_holder() {
    let db = TestStore::start(Backend::Embedded);
    let (toml, folder) = config_toml(&db, FAST_DELIVERY, "");
    let dir = Arc::new(TempDir::new("embedded-lock"));
    let gw = GatewayProcess::spawn(&toml, dir.clone()).await;
    let second = dir.path().join("second.toml");
    let port = hookgate_testkit::free_port();
    std::fs::write(
        &second,
        toml.replace("listen = \"127.0.0.1:0\"", &format!("listen = \"127.0.0.1:{port}\"")),
    )
    .unwrap();
    let started = Instant::now();
    let (code, stderr) = serve_until_exit(&second);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "it does not wait for the folder"
    );
    let pid = gw.child.id();
    assert!(
        stderr.contains(&format!(
            "data folder {folder} is in use by another hookgate process (pid {pid})"
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_data_file_is_a_clear_error_at_start() {
    let db = TestStore::start(Backend::Embedded);
    let (toml, folder) = config_toml(&db, FAST_DELIVERY, "");
    // A store with some data, closed cleanly...
    {
        let dir = Arc::new(TempDir::new("embedded-damage"));
        let mut gw = GatewayProcess::spawn(&toml, dir).await;
        let client = http();
        post_many(&client, &gw.url("/api/events"), 20).await;
        assert!(gw.terminate(Duration::from_secs(20)).success());
    }
    let file = Path::new(&folder).join(hookgate::store::embedded::DATA_FILE);
    let good = std::fs::read(&file).unwrap();
    let dir = TempDir::new("embedded-damage-run");
    let config = dir.path().join("config.toml");
    std::fs::write(&config, &toml).unwrap();
    // ...then damaged three ways: its header, cut short, pages overwritten.
    let damages: [(&str, Damage); 3] = [
        ("header", |b| b[..512].fill(0xA5)),
        ("truncated", |b| b.truncate(1000)),
        ("pages", |b| {
            for off in (8192..b.len().saturating_sub(256)).step_by(4096) {
                b[off + 100..off + 164].fill(0x5A);
            }
        }),
    ];
    for (what, damage) in damages {
        let mut bytes = good.clone();
        damage(&mut bytes);
        std::fs::write(&file, &bytes).unwrap();
        let (code, stderr) = serve_until_exit(&config);
        assert_eq!(code, Some(1), "{what}: {stderr}");
        assert!(
            stderr.contains(&format!("data file {} is damaged", file.display())),
            "{what}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{what}: {stderr}");
    }
}

/// A small tmpfs of its own, unmounted on drop; `None` where this process
/// may not mount one (not root).
struct SmallDisk {
    dir: TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> Option<Self> {
        let dir = TempDir::new("small-disk");
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        mounted.then_some(SmallDisk { dir })
    }

    /// Fills the disk with a file, less `room` bytes; returns its path.
    fn fill(&self, room: u64) -> std::path::PathBuf {
        use std::io::Write;
        let path = self.dir.path().join("filler");
        let mut f = std::fs::File::create(&path).unwrap();
        let chunk = vec![1u8; 16 << 10];
        while f.write_all(&chunk).is_ok() {}
        let len = f.metadata().unwrap().len();
        f.set_len(len.saturating_sub(room)).unwrap();
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_answers_503_loses_nothing_accepted_and_recovers_by_itself() {
    let db = TestStore::start(Backend::Embedded);
    let rx = Receiver::start().await;
    let (toml, folder) = config_toml(&db, FAST_DELIVERY, &webhook("w", &rx.url("/w"), &["*"], ""));
    let Some(disk) = SmallDisk::mount("8m") else {
        // No small filesystem to fill: an unwritable folder instead, which
        // must stop the gateway at start with a clear error.
        let ro = TempDir::new("read-only");
        let data = ro.path().join("data");
        std::fs::create_dir(&data).unwrap();
        std::fs::set_permissions(&data, std::os::unix::fs::PermissionsExt::from_mode(0o555)).unwrap();
        let config = ro.path().join("config.toml");
        std::fs::write(&config, toml.replace(&folder, data.to_str().unwrap())).unwrap();
        let (code, stderr) = serve_until_exit(&config);
        assert_eq!(code, Some(1), "{stderr}");
        assert!(stderr.contains(data.to_str().unwrap()), "{stderr}");
        return;
    };
    let data = disk.dir.path().join("data");
    let toml = toml.replace(&folder, data.to_str().unwrap());
    let gw = Gateway::start(&toml).await;
    let mut accepted = Vec::new();
    accepted.extend(delivery_ids(&gw.post_event("a.b", r#"{"before":"full"}"#).await));
    let filler = disk.fill(1 << 20);

    // Events as big as the test config allows, until the store is full.
    let big = format!(r#"{{"type":"a.b","data":{{"pad":"{}"}}}}"#, "x".repeat(3_500));
    let mut refused = None;
    for _ in 0..5_000 {
        let resp = gw
            .http
            .post(gw.url("/api/events"))
            .bearer_auth(TOKEN)
            .header("content-type", "application/json")
            .body(big.clone())
            .send()
            .await
            .unwrap();
        if resp.status() == 202 {
            accepted.extend(delivery_ids(&resp.json().await.unwrap()));
            continue;
        }
        let retry_after = resp.headers().get("retry-after").cloned();
        let status = resp.status().as_u16();
        let body: serde_json::Value = resp.json().await.unwrap();
        refused = Some((status, retry_after, body));
        break;
    }
    let (status, retry_after, body) = refused.expect("a full disk refuses events");
    assert!(accepted.len() > 20, "events were taken until the disk was full");
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("store_unavailable")),
        "{body}"
    );
    assert!(retry_after.is_some(), "503 carries Retry-After");

    // Space comes back: ingest recovers with no restart.
    std::fs::remove_file(&filler).unwrap();
    let after = wait_until(Duration::from_secs(30), "ingest to accept events again", || async {
        let (status, body) = gw.post_raw(r#"{"type":"a.b","data":{"after":"full"}}"#).await;
        (status == 202).then(|| delivery_ids(&body))
    })
    .await;
    accepted.extend(after);
    let store = store(&db, data.to_str().unwrap());
    for id in &accepted {
        wait_status(&store, id, Status::Succeeded, Duration::from_secs(30)).await;
    }
    let seen: std::collections::HashSet<String> = rx
        .received()
        .iter()
        .filter_map(|r| r.header("x-delivery-id").map(str::to_owned))
        .collect();
    assert!(
        accepted.iter().all(|id| seen.contains(id)),
        "every accepted event was delivered"
    );
    drop(store);
    gw.stop().await;
}
