//! Shared setup: configs, an in-process gateway, a gateway child process.

#![allow(dead_code, unused_macros, unused_imports)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use hookgate::config::Config;
use hookgate::store::Store;
use hookgate::store::embedded::EmbeddedStore;
use hookgate::store::redis::RedisStore;
use hookgate_testkit::{RedisCluster, RedisServer, TempDir, unique, wait_until};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

pub const TOKEN: &str = "test-token-0123456789";

/// `[delivery]` settings that make tests fast and exact.
pub const FAST_DELIVERY: &str = r#"
allow_private_destinations = true
retry_jitter = 0.0
retry_base = "200ms"
retry_factor = 2
timeout = "2s"
rate_limit_per_minute = 60000
rate_limit_burst = 1000
"#;

/// [`FAST_DELIVERY`] with some keys replaced or added (`key = value` lines).
pub fn fast_delivery(overrides: &str) -> String {
    let key = |line: &str| line.split('=').next().unwrap_or("").trim().to_owned();
    let replaced: Vec<String> = overrides.lines().filter(|l| l.contains('=')).map(key).collect();
    let kept: Vec<&str> = FAST_DELIVERY.lines().filter(|l| !replaced.contains(&key(l))).collect();
    format!("{}\n{overrides}\n", kept.join("\n"))
}

/// Which store a test gateway runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Redis,
    Embedded,
}

impl Backend {
    /// For names that must differ between a test's two runs in one process
    /// (metric labels are process-wide).
    pub fn tag(self) -> &'static str {
        match self {
            Backend::Redis => "redis",
            Backend::Embedded => "embedded",
        }
    }
}

/// Where a test's gateways keep their state: a redis-server of its own
/// (each config a fresh key prefix), or a temp folder (each config a fresh
/// data folder in it).
pub trait TestBackend {
    /// The `[store]` section of a new config, and the key `store` takes to
    /// open the same store (a Redis prefix or a data folder).
    fn store_section(&self) -> (String, String);
    /// A handle on the store a config of [`TestBackend::store_section`] uses.
    fn open(&self, key: &str) -> Arc<dyn Store>;
}

impl TestBackend for RedisServer {
    fn store_section(&self) -> (String, String) {
        let prefix = format!("t{}x{}", std::process::id(), unique());
        let section = format!("backend = \"redis\"\nurl = \"{}\"\nprefix = \"{prefix}\"\n", self.url());
        (section, prefix)
    }
    fn open(&self, prefix: &str) -> Arc<dyn Store> {
        Arc::new(RedisStore::open(&self.url(), prefix, Duration::from_secs(3600)).unwrap())
    }
}

/// A Redis Cluster: each config a fresh key prefix, the gateway given every
/// node as a seed (`cluster_nodes`) and a `url` that leads nowhere, which
/// the cluster setting overrides.
impl TestBackend for RedisCluster {
    fn store_section(&self) -> (String, String) {
        let prefix = format!("t{}x{}", std::process::id(), unique());
        let seeds: Vec<String> = self.urls().iter().map(|u| format!("{u:?}")).collect();
        let section = format!(
            "backend = \"redis\"\nurl = \"redis://127.0.0.1:1\"\ncluster_nodes = [{}]\nprefix = \"{prefix}\"\n",
            seeds.join(", ")
        );
        (section, prefix)
    }
    fn open(&self, prefix: &str) -> Arc<dyn Store> {
        Arc::new(RedisStore::open_cluster(&self.urls(), prefix, Duration::from_secs(3600)).unwrap())
    }
}

/// The store of a test that runs on either backend.
pub enum TestStore {
    Redis(RedisServer),
    Embedded(TempDir),
}

impl TestStore {
    pub fn start(backend: Backend) -> Self {
        match backend {
            Backend::Redis => TestStore::Redis(RedisServer::start()),
            Backend::Embedded => TestStore::Embedded(TempDir::new("embedded")),
        }
    }
}

impl TestBackend for TestStore {
    fn store_section(&self) -> (String, String) {
        match self {
            TestStore::Redis(redis) => redis.store_section(),
            TestStore::Embedded(dir) => {
                let folder = dir.path().join(format!("data-{}", unique()));
                let folder = folder.to_str().expect("temp paths are UTF-8").to_owned();
                (format!("backend = \"embedded\"\npath = {folder:?}\n"), folder)
            }
        }
    }
    /// For the embedded store: the same store the gateway in this process
    /// uses (a folder is opened once per process). A gateway in another
    /// process holds the folder: open it only after that one exits.
    fn open(&self, key: &str) -> Arc<dyn Store> {
        match self {
            TestStore::Redis(redis) => redis.open(key),
            TestStore::Embedded(_) => {
                EmbeddedStore::open(Path::new(key), Duration::from_secs(3600)).expect("open the test's data folder")
            }
        }
    }
}

/// A config on `backend` (a fresh Redis key prefix or data folder), and
/// the key [`store`] opens its store with.
pub fn config_toml(backend: &impl TestBackend, delivery: &str, webhooks: &str) -> (String, String) {
    let (section, key) = backend.store_section();
    let toml = format!(
        r#"
[server]
listen = "127.0.0.1:0"
max_body_bytes = 4096

[api]
tokens = ["{TOKEN}"]

[store]
{section}
[delivery]
{delivery}

{webhooks}
"#
    );
    (toml, key)
}

/// Runs `async fn name(backend: Backend)` tests once per backend, as
/// `name::redis` and `name::embedded`.
macro_rules! on_both_backends {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn redis() {
                super::$name($crate::common::Backend::Redis).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn embedded() {
                super::$name($crate::common::Backend::Embedded).await
            }
        }
    )+};
}
pub(crate) use on_both_backends;

/// A `[[webhooks]]` block.
pub fn webhook(id: &str, url: &str, events: &[&str], extra: &str) -> String {
    let events: Vec<String> = events.iter().map(|e| format!("{e:?}")).collect();
    format!(
        "[[webhooks]]\nid = \"{id}\"\nurl = \"{url}\"\nevents = [{}]\nsecret = \"secret-{id}-0123\"\n{extra}\n",
        events.join(", ")
    )
}

/// A `[[webhooks.plugins]]` block (after a [`webhook`] block).
pub fn plugin(path: &Path, config: &str, extra: &str) -> String {
    format!(
        "[[webhooks.plugins]]\npath = \"{}\"\nconfig = {{ {config} }}\n{extra}\n",
        path.display()
    )
}

/// A webhook named "Done tasks only" for `task.*` events whose
/// `event-filter` plugin drops every event without `"status": "done"`
/// (needs a [`plugins_section`]).
pub fn done_tasks_only_webhook(id: &str, url: &str) -> String {
    let filter = &hookgate_testkit::wasm::built_plugins().event_filter;
    [
        webhook(id, url, &["task.*"], "name = \"Done tasks only\""),
        plugin(filter, "field = \"/status\", op = \"eq\", value = \"done\"", ""),
    ]
    .concat()
}

/// A `[plugins]` section with its compile cache in `dir`.
pub fn plugins_section(dir: &TempDir) -> String {
    format!("[plugins]\ncache_dir = \"{}\"\n\n", dir.path().join("cache").display())
}

pub fn parse_config(toml: &str) -> Config {
    Config::parse(toml, Path::new("test-config.toml"), &|k| std::env::var(k).ok()).expect("test config is valid")
}

pub fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// A store handle on the same store as a config made by [`config_toml`],
/// for looking at records.
pub fn store(backend: &impl TestBackend, key: &str) -> Arc<dyn Store> {
    backend.open(key)
}

/// A gateway running in this process.
pub struct Gateway {
    pub addr: SocketAddr,
    pub http: reqwest::Client,
    shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<Result<(), hookgate::RunError>>>,
}

impl Gateway {
    pub async fn start(toml: &str) -> Self {
        let config = parse_config(toml);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(hookgate::run(config, listener, shutdown.clone()));
        Gateway {
            addr,
            http: http(),
            shutdown,
            task: Some(task),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Waits until the gateway serves: it loads (on a cold cache: compiles,
    /// seconds per plugin, more for JavaScript or Python) every configured
    /// plugin first.
    pub async fn serving(&self) {
        wait_until(
            Duration::from_secs(300),
            "the gateway to load its plugins and serve",
            || async {
                let r = self.http.get(self.url("/healthz")).send().await.ok()?;
                r.status().is_success().then_some(())
            },
        )
        .await;
    }

    /// Posts a raw body to /api/events with the token.
    pub async fn post_raw(&self, body: &str) -> (u16, Value) {
        let resp = self
            .http
            .post(self.url("/api/events"))
            .bearer_auth(TOKEN)
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// Posts an event; panics unless 202. Returns the answer.
    pub async fn post_event(&self, event_type: &str, data: &str) -> Value {
        let (status, body) = self
            .post_raw(&format!(r#"{{"type":"{event_type}","data":{data}}}"#))
            .await;
        assert_eq!(status, 202, "{body}");
        body
    }

    /// Calls the API with the token: `(status, headers, JSON body)`.
    pub async fn api(&self, method: &str, path: &str, body: Option<Value>) -> (u16, reqwest::header::HeaderMap, Value) {
        self.api_as(Some(TOKEN), method, path, body.map(|b| b.to_string()))
            .await
    }

    /// Calls the API with any token and a raw body.
    pub async fn api_as(
        &self,
        token: Option<&str>,
        method: &str,
        path: &str,
        body: Option<String>,
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let mut req = self
            .http
            .request(method.parse().unwrap(), self.url(path))
            .header("content-type", "application/json");
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.body(b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        (status, headers, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// The `/metrics` text.
    pub async fn metrics(&self) -> String {
        let resp = self.http.get(self.url("/metrics")).send().await.unwrap();
        resp.text().await.unwrap()
    }

    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(t) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(30), t)
                .await
                .expect("gateway stops in time")
                .unwrap()
                .unwrap();
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// The delivery ids of a 202 answer.
/// Posts `event` to `url` (a gateway's `/api/events`) with the token;
/// panics unless 202. Returns the delivery ids.
pub async fn post_event_to(client: &reqwest::Client, url: &str, event: &Value) -> Vec<String> {
    let resp = client.post(url).bearer_auth(TOKEN).json(event).send().await.unwrap();
    assert_eq!(resp.status(), 202);
    delivery_ids(&resp.json().await.unwrap())
}

pub fn delivery_ids(answer: &Value) -> Vec<String> {
    answer["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap().to_owned())
        .collect()
}

/// The id of a 202 answer's delivery to `webhook`.
pub fn delivery_to(answer: &Value, webhook: &str) -> String {
    answer["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["webhookId"] == webhook)
        .unwrap_or_else(|| panic!("no delivery to {webhook} in {answer}"))["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Waits until the store shows `status` for a delivery, and returns it.
pub async fn wait_status(
    store: &Arc<dyn Store>,
    id: &str,
    status: hookgate::store::Status,
    timeout: Duration,
) -> hookgate::store::DeliveryRecord {
    wait_until(timeout, &format!("delivery {id} to be {status:?}"), || async {
        store.delivery(id).await.ok().flatten().filter(|r| r.status == status)
    })
    .await
}

/// The real `hookgate` binary as a child process.
pub struct GatewayProcess {
    pub child: Child,
    pub addr: SocketAddr,
    pub log: PathBuf,
    _dir: Arc<TempDir>,
}

impl GatewayProcess {
    /// Writes `toml` (its listen address replaced by a free port) and runs
    /// `hookgate serve` on it; waits until /healthz answers.
    pub async fn spawn(toml: &str, dir: Arc<TempDir>) -> Self {
        Self::spawn_with_env(toml, dir, &[]).await
    }

    /// [`GatewayProcess::spawn`] with environment variables set for it.
    pub async fn spawn_with_env(toml: &str, dir: Arc<TempDir>, env: &[(&str, &Path)]) -> Self {
        let port = hookgate_testkit::free_port();
        let toml = toml.replace("listen = \"127.0.0.1:0\"", &format!("listen = \"127.0.0.1:{port}\""));
        let n = unique();
        let config = dir.path().join(format!("config-{n}.toml"));
        std::fs::write(&config, toml).unwrap();
        let log = dir.path().join(format!("gateway-{n}.log"));
        let child = Command::new(env!("CARGO_BIN_EXE_hookgate"))
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("spawn hookgate");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let client = http();
        wait_until(
            Duration::from_secs(20),
            "the gateway process to answer /healthz",
            || {
                let client = client.clone();
                async move {
                    let r = client.get(format!("http://{addr}/healthz")).send().await.ok()?;
                    r.status().is_success().then_some(())
                }
            },
        )
        .await;
        GatewayProcess {
            child,
            addr,
            log,
            _dir: dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL: no shutdown at all.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits for the exit status.
    #[allow(
        clippy::disallowed_methods,
        reason = "waits on a child process in short steps; the tests run it on a multi-thread runtime"
    )]
    pub fn terminate(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "gateway did not exit within {timeout:?} after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}
