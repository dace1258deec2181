//! The gateway under test: the config this tool writes for it, the child
//! process (killed on drop, log kept in the run folder), and, for an already
//! running gateway, webhooks created through its API and deleted after.
//!
//! The written config lets nothing but the gateway itself limit throughput:
//! API and per-webhook rate limits far above any reachable rate, private
//! destinations allowed (the receiver is on 127.0.0.1), short exact retry
//! waits (`retry_base = "100ms"`, no jitter) so failure scenarios finish.
//! With `--tls` the listener serves HTTPS with the run's certificate and the
//! webhooks point at the receiver's `https://` address, trusted through
//! `[delivery] ca_file`.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use hyper::{Method, StatusCode};

use crate::cli::PluginMode;
use crate::http::{Target, request_once};
use crate::tls::TlsFiles;

/// The webhook secret every bench webhook uses.
pub const SECRET: &str = "hookgate-bench-secret-0123456789";
/// The API token of a spawned gateway.
pub const TOKEN: &str = "hookgate-bench-token-0123456789";
/// The event type a spawned gateway's webhooks subscribe to.
pub const EVENT_TYPE: &str = "bench.event";
/// A per-webhook rate limit no run reaches (1,000,000/s).
const UNREACHABLE_RATE_PER_MINUTE: u64 = 60_000_000;

/// The `[store]` of the written config.
#[derive(Debug, Clone)]
pub enum StoreSpec {
    Redis {
        url: String,
        prefix: String,
    },
    /// A Redis Cluster: its seed nodes (`cluster_nodes`).
    RedisCluster {
        nodes: Vec<String>,
        prefix: String,
    },
    Embedded {
        path: PathBuf,
    },
}

/// What goes into the written config.
#[derive(Debug, Clone)]
pub struct ConfigSpec {
    pub listen: SocketAddr,
    pub store: StoreSpec,
    pub retention: String,
    pub receiver: SocketAddr,
    pub fanout: u32,
    pub concurrency: u32,
    pub plugins: PluginMode,
    /// Absolute path of the plugin component.
    pub plugin_wasm: Option<PathBuf>,
    pub plugin_cache: PathBuf,
    /// HTTPS on both legs: the listener's pair and the CA the receiver's
    /// certificate chains to.
    pub tls: Option<TlsFiles>,
    /// `[store] shards` (Redis only); not written when `None`.
    pub shards: Option<u32>,
    /// `[server] worker_threads`; not written when `None`.
    pub worker_threads: Option<u32>,
}

/// A TOML basic string.
fn toml_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The plugin block's `config` for a mode (the redact plugin redacts the
/// payload's only field).
pub fn plugin_config(mode: PluginMode) -> Option<(&'static str, &'static str)> {
    match mode {
        PluginMode::Redact => Some(("fields", "/pad")),
        PluginMode::None | PluginMode::PassThrough => None,
    }
}

/// The gateway's config.toml.
pub fn config_toml(spec: &ConfigSpec) -> anyhow::Result<String> {
    let mut t = String::new();
    writeln!(t, "# Written by hookgate-bench for one run.")?;
    writeln!(
        t,
        "[server]\nlisten = {}\nmax_body_bytes = 2097152",
        toml_str(&spec.listen.to_string())
    )?;
    if let Some(n) = spec.worker_threads {
        writeln!(t, "worker_threads = {n}")?;
    }
    if let Some(tls) = &spec.tls {
        writeln!(
            t,
            "tls_cert = {}\ntls_key = {}",
            toml_str(&tls.cert.to_string_lossy()),
            toml_str(&tls.key.to_string_lossy())
        )?;
    }
    writeln!(t)?;
    writeln!(
        t,
        "[api]\ntokens = [{}]\nrate_limit_per_minute = 1000000000\n",
        toml_str(TOKEN)
    )?;
    match &spec.store {
        StoreSpec::Redis { url, prefix } => writeln!(
            t,
            "[store]\nbackend = \"redis\"\nurl = {}\nprefix = {}\nretention = {}",
            toml_str(url),
            toml_str(prefix),
            toml_str(&spec.retention)
        )?,
        StoreSpec::RedisCluster { nodes, prefix } => writeln!(
            t,
            "[store]\nbackend = \"redis\"\ncluster_nodes = [{}]\nprefix = {}\nretention = {}",
            nodes.iter().map(|n| toml_str(n)).collect::<Vec<_>>().join(", "),
            toml_str(prefix),
            toml_str(&spec.retention)
        )?,
        StoreSpec::Embedded { path } => writeln!(
            t,
            "[store]\nbackend = \"embedded\"\npath = {}\nretention = {}",
            toml_str(&path.to_string_lossy()),
            toml_str(&spec.retention)
        )?,
    }
    match (spec.shards, &spec.store) {
        (Some(n), StoreSpec::Redis { .. } | StoreSpec::RedisCluster { .. }) => writeln!(t, "shards = {n}\n")?,
        _ => writeln!(t)?,
    }
    writeln!(
        t,
        "[delivery]\ntimeout = \"10s\"\nmax_retries = 10\nretry_base = \"100ms\"\nretry_factor = 2\n\
         retry_max_delay = \"5s\"\nretry_jitter = 0.0\nrate_limit_per_minute = {UNREACHABLE_RATE_PER_MINUTE}\n\
         rate_limit_burst = 1000000\nsignature_headers = [\"hub\", \"standard\"]\nconcurrency = {}\n\
         allow_private_destinations = true",
        spec.concurrency
    )?;
    if let Some(tls) = &spec.tls {
        writeln!(t, "ca_file = {}", toml_str(&tls.ca.to_string_lossy()))?;
    }
    writeln!(t)?;
    let scheme = if spec.tls.is_some() { "https" } else { "http" };
    writeln!(
        t,
        "[plugins]\ncache_dir = {}\n",
        toml_str(&spec.plugin_cache.to_string_lossy())
    )?;
    for i in 0..spec.fanout {
        writeln!(
            t,
            "[[webhooks]]\nid = \"bench-{i}\"\nname = \"bench receiver {i}\"\nurl = \"{scheme}://{}/hook/{i}\"\n\
             events = [\"bench.*\"]\nsecret = {}\n",
            spec.receiver,
            toml_str(SECRET)
        )?;
        if spec.plugins != PluginMode::None {
            let path = spec
                .plugin_wasm
                .as_deref()
                .context("a plugin scenario needs --plugin-wasm")?;
            writeln!(
                t,
                "  [[webhooks.plugins]]\n  path = {}",
                toml_str(&path.to_string_lossy())
            )?;
            if let Some((k, v)) = plugin_config(spec.plugins) {
                writeln!(t, "  config = {{ {k} = {} }}", toml_str(v))?;
            }
            writeln!(t, "  on_error = \"retry\"\n")?;
        }
    }
    Ok(t)
}

/// A gateway child process; killed on drop.
pub struct GatewayProc {
    child: Child,
    pub log: PathBuf,
}

impl Drop for GatewayProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl GatewayProc {
    /// Spawns `bin serve --config config`, logging to `log` with `RUST_LOG=log_filter`.
    pub fn spawn(bin: &Path, config: &Path, log_filter: &str, log: &Path) -> anyhow::Result<Self> {
        if !bin.is_file() {
            bail!(
                "gateway binary not found at {}: build it first with `cargo build --release -p hookgate` \
                 (from the repository root), or pass --gateway-bin PATH or --gateway-url URL",
                bin.display()
            );
        }
        let out = std::fs::File::create(log).with_context(|| format!("create {}", log.display()))?;
        let child = Command::new(bin)
            .arg("serve")
            .arg("--config")
            .arg(config)
            .env("RUST_LOG", log_filter)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("start {}", bin.display()))?;
        Ok(GatewayProc {
            child,
            log: log.to_owned(),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until `GET /healthz` answers 200; fails with the log's tail if
    /// the gateway exits or does not get healthy within `timeout`.
    pub async fn wait_healthy(&mut self, target: &Target, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "the gateway exited ({status}) before it was ready:\n{}",
                    self.log_tail()
                );
            }
            if let Ok((StatusCode::OK, _)) = request_once(target, Method::GET, "/healthz", &[], Bytes::new()).await {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("the gateway was not healthy within {timeout:?}:\n{}", self.log_tail());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The last lines of the gateway log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

/// Creates `fanout` webhooks on a running gateway, subscribed to `event_type`
/// and pointing at the receiver; returns their ids.
pub async fn create_api_webhooks(
    target: &Target,
    token: &str,
    receiver: SocketAddr,
    fanout: u32,
    event_type: &str,
    plugin: Option<(&Path, PluginMode)>,
) -> anyhow::Result<Vec<String>> {
    let auth = format!("Bearer {token}");
    let mut ids = Vec::new();
    for i in 0..fanout {
        let mut body = serde_json::json!({
            "name": format!("hookgate-bench {i}"),
            "url": format!("http://{receiver}/hook/{i}"),
            "events": [event_type],
            "secret": SECRET,
            "rateLimitPerMinute": UNREACHABLE_RATE_PER_MINUTE,
            "maxRetries": 10,
        });
        if let Some((path, mode)) = plugin {
            let config: serde_json::Map<String, serde_json::Value> = plugin_config(mode)
                .map(|(k, v)| (k.to_owned(), v.into()))
                .into_iter()
                .collect();
            body["plugins"] = serde_json::json!([{"path": path.to_string_lossy(), "config": config}]);
        }
        let headers = [("authorization", auth.as_str()), ("content-type", "application/json")];
        let (status, answer) = request_once(
            target,
            Method::POST,
            "/api/webhooks",
            &headers,
            Bytes::from(body.to_string()),
        )
        .await?;
        if status != StatusCode::CREATED {
            bail!(
                "POST /api/webhooks answered {status}: {}",
                String::from_utf8_lossy(&answer)
            );
        }
        let v: serde_json::Value = serde_json::from_slice(&answer).context("POST /api/webhooks answer")?;
        let id = v["id"].as_str().context("POST /api/webhooks answer without id")?;
        ids.push(id.to_owned());
    }
    Ok(ids)
}

/// Deletes webhooks created by [`create_api_webhooks`] (best effort).
pub async fn delete_api_webhooks(target: &Target, token: &str, ids: &[String]) {
    let auth = format!("Bearer {token}");
    for id in ids {
        let path = format!("/api/webhooks/{id}");
        let _ = request_once(target, Method::DELETE, &path, &[("authorization", &auth)], Bytes::new()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(plugins: PluginMode, wasm: Option<&str>) -> ConfigSpec {
        ConfigSpec {
            listen: "127.0.0.1:18080".parse().unwrap(),
            store: StoreSpec::Redis {
                url: "redis://127.0.0.1:16379".into(),
                prefix: "bench-1".into(),
            },
            retention: "1h".into(),
            receiver: "127.0.0.1:19000".parse().unwrap(),
            fanout: 2,
            concurrency: 128,
            plugins,
            plugin_wasm: wasm.map(PathBuf::from),
            plugin_cache: PathBuf::from("/tmp/run/cache"),
            tls: None,
            shards: None,
            worker_threads: None,
        }
    }

    #[test]
    fn cluster_config_names_the_nodes_and_shards_only_when_asked() {
        let cluster = ConfigSpec {
            store: StoreSpec::RedisCluster {
                nodes: vec!["redis://127.0.0.1:7000".into(), "redis://127.0.0.1:7001".into()],
                prefix: "bench".into(),
            },
            ..spec(PluginMode::None, None)
        };
        let t = config_toml(&cluster).unwrap();
        assert!(t.contains(
            "[store]\nbackend = \"redis\"\ncluster_nodes = [\"redis://127.0.0.1:7000\", \"redis://127.0.0.1:7001\"]\n\
             prefix = \"bench\"\nretention = \"1h\"\n\n[delivery]"
        ));
        assert!(!t.contains("url = \"redis") && !t.contains("shards") && !t.contains("worker_threads"));
        let threaded = config_toml(&ConfigSpec {
            worker_threads: Some(1),
            ..spec(PluginMode::None, None)
        })
        .unwrap();
        assert!(
            threaded.contains("max_body_bytes = 2097152\nworker_threads = 1\n"),
            "{threaded}"
        );
        let sharded = config_toml(&ConfigSpec {
            shards: Some(16),
            ..cluster
        })
        .unwrap();
        assert!(sharded.contains("retention = \"1h\"\nshards = 16\n\n[delivery]"));
        let embedded = config_toml(&ConfigSpec {
            store: StoreSpec::Embedded {
                path: PathBuf::from("/d"),
            },
            shards: Some(16),
            ..spec(PluginMode::None, None)
        })
        .unwrap();
        assert!(!embedded.contains("shards"), "not a Redis setting there");
    }

    #[test]
    fn config_has_webhooks_limits_and_plugins() {
        let t = config_toml(&spec(PluginMode::Redact, Some("/p/redact \"x\".wasm"))).unwrap();
        assert_eq!(t.matches("[[webhooks]]").count(), 2);
        assert_eq!(t.matches("[[webhooks.plugins]]").count(), 2);
        assert!(t.contains("url = \"http://127.0.0.1:19000/hook/1\""));
        assert!(t.contains("path = \"/p/redact \\\"x\\\".wasm\""));
        assert!(t.contains("config = { fields = \"/pad\" }"));
        assert!(t.contains("allow_private_destinations = true"));
        assert!(t.contains("concurrency = 128"));
        assert!(t.contains("retry_jitter = 0.0"));
        let plain = config_toml(&spec(PluginMode::None, None)).unwrap();
        assert!(!plain.contains("webhooks.plugins"));
        assert!(config_toml(&spec(PluginMode::PassThrough, None)).is_err());
        assert!(plain.contains("backend = \"redis\"") && plain.contains("retention = \"1h\""));
        let embedded = config_toml(&ConfigSpec {
            store: StoreSpec::Embedded {
                path: PathBuf::from("/tmp/run/data"),
            },
            retention: "30s".into(),
            ..spec(PluginMode::None, None)
        })
        .unwrap();
        assert!(embedded.contains("backend = \"embedded\"\npath = \"/tmp/run/data\"\nretention = \"30s\""));
        assert!(!plain.contains("tls_cert") && !plain.contains("ca_file") && !plain.contains("https://"));
    }

    #[test]
    fn tls_config_serves_and_delivers_https() {
        let t = config_toml(&ConfigSpec {
            tls: Some(TlsFiles {
                ca: PathBuf::from("/run/ca.pem"),
                cert: PathBuf::from("/run/gateway.pem"),
                key: PathBuf::from("/run/gateway.key"),
            }),
            ..spec(PluginMode::None, None)
        })
        .unwrap();
        assert!(
            t.contains("max_body_bytes = 2097152\ntls_cert = \"/run/gateway.pem\"\ntls_key = \"/run/gateway.key\"\n")
        );
        assert!(t.contains("allow_private_destinations = true\nca_file = \"/run/ca.pem\"\n"));
        assert_eq!(t.matches("url = \"https://127.0.0.1:19000/hook/").count(), 2);
        assert!(!t.contains("http://127.0.0.1:19000"));
    }
}
