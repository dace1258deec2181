//! Config parsing and validation: defaults, env indirection, positions.

use std::path::Path;
use std::time::Duration;

use super::*;

fn env(name: &str) -> Option<String> {
    match name {
        "TOKEN" => Some("tok-0123456789".into()),
        "SECRET" => Some("secret-0123456789".into()),
        _ => None,
    }
}

fn parse(src: &str) -> Result<Config, ConfigErrors> {
    Config::parse(src, Path::new("c.toml"), &env)
}

const MINIMAL: &str = "[api]\ntokens = [\"env:TOKEN\"]\n[store]\nbackend = \"redis\"\n";

#[test]
fn defaults_match_the_spec() {
    let c = parse(MINIMAL).unwrap();
    assert_eq!(c.server.listen, "127.0.0.1:8080");
    assert_eq!(c.server.max_body_bytes, 1_048_576);
    assert_eq!(c.api.tokens[0].expose(), "tok-0123456789");
    assert_eq!(c.api.rate_limit_per_minute, 600);
    assert_eq!(c.store.url, "redis://127.0.0.1:6379");
    assert_eq!(c.store.prefix, "hookgate");
    assert_eq!(c.store.retention, Duration::from_secs(7 * 86_400));
    let d = &c.delivery;
    assert_eq!(d.timeout, Duration::from_secs(10));
    assert_eq!(d.retry.max_retries, 3);
    assert_eq!(d.retry.base, Duration::from_secs(5));
    assert_eq!(d.retry.factor, 5);
    assert_eq!(d.retry.max_delay, Duration::from_secs(36_000));
    assert!((d.retry.jitter - 0.1).abs() < f64::EPSILON);
    assert_eq!((d.rate_limit_per_minute, d.rate_limit_burst), (60, 10));
    assert_eq!(
        d.signature_headers,
        SignatureSchemes {
            hub: true,
            standard: true
        }
    );
    assert_eq!(d.concurrency, 256);
    assert!(!d.allow_private_destinations);
    assert_eq!(c.plugins.timeout, Duration::from_millis(100));
    assert_eq!(c.plugins.max_memory, 32 << 20);
}

#[test]
fn the_example_config_in_the_repo_is_valid() {
    let src = include_str!("../../../config.toml");
    let env = |n: &str| Some(format!("value-for-{n}"));
    let c = Config::parse(src, Path::new("config.toml"), &env).unwrap();
    assert_eq!(c.webhooks.len(), 1);
    assert_eq!(c.webhooks[0].headers, vec![("X-Team".to_owned(), "billing".to_owned())]);
}

#[test]
fn webhook_fields_and_overrides() {
    let src = format!(
        "{MINIMAL}[[webhooks]]\nid = \"orders\"\nurl = \"https://example.com/h\"\nevents = [\"task.*\", \"x\"]\nsecret = \"env:SECRET\"\nmax_retries = 5\ntimeout = \"5s\"\nrate_limit_per_minute = 120\ntest_mode = true\n"
    );
    let c = parse(&src).unwrap();
    let w = &c.webhooks[0];
    assert_eq!(w.name, "orders", "name defaults to the id");
    assert_eq!(w.secrets[0].0.expose(), "secret-0123456789");
    assert_eq!((w.max_retries, w.rate_limit_per_minute), (Some(5), Some(120)));
    assert_eq!(w.timeout, Some(Duration::from_secs(5)));
    assert!(w.test_mode && w.enabled);
    assert_eq!(c.max_attempt_time(), Duration::from_secs(10));
}

#[test]
fn all_errors_are_collected_with_positions() {
    let src = "[api]\ntokens = [\"env:NOPE\"]\n[store]\nbackend = \"redis\"\nretention = \"forever\"\n[delivery]\nretry_jitter = 2.0\nsignature_headers = [\"hub\", \"jwt\"]\n[[webhooks]]\nid = \"a\"\nurl = \"https://e.com\"\nevents = []\nsecret = \"0123456789\"\nheaders = { \"X-Hub-Signature\" = \"forged\" }\n[[webhooks]]\nid = \"a\"\nurl = \"https://user:pw@e.com\"\nevents = [\"*\"]\n";
    let errs = parse(src).unwrap_err().to_string();
    for expected in [
        "c.toml:2:11: environment variable NOPE is not set",
        "c.toml:5:13: store.retention: invalid duration",
        "c.toml:7:16: delivery.retry_jitter must be between 0 and 1",
        "c.toml:8:29: signature_headers entries are \"hub\" or \"standard\", got \"jwt\"",
        "c.toml:12:10: events must list at least one pattern",
        "c.toml:14:33: header \"X-Hub-Signature\" is set by hookgate",
        "c.toml:16:6: duplicate webhook id \"a\"",
        "c.toml:17:7: url must not contain credentials",
        "is missing `secret`",
    ] {
        assert!(errs.contains(expected), "missing {expected:?} in:\n{errs}");
    }
    assert!(!errs.contains("forged"), "header values are not echoed");
}

#[test]
fn unknown_keys_and_wrong_types_are_errors() {
    let e = parse(&format!("{MINIMAL}[server]\nlisten = \"x\"\nport = 1\n")).unwrap_err();
    assert_eq!(e.0[0].line, 7);
    assert!(e.0[0].message.contains("unknown field `port`"), "{e}");
    let e = parse(&format!("{MINIMAL}[delivery]\nmax_retries = \"3\"\n")).unwrap_err();
    assert_eq!((e.0[0].line, e.0[0].col), (6, 15));
    let e = parse("[api\n").unwrap_err();
    assert_eq!(e.0[0].line, 1);
}

#[test]
fn missing_tokens_are_explained_and_the_default_store_is_embedded() {
    let e = parse("").unwrap_err().to_string();
    assert!(e.contains("[api] tokens is required"), "{e}");
    let c = parse("[api]\ntokens = [\"env:TOKEN\"]\n").unwrap();
    assert_eq!(c.store.backend, Backend::Embedded);
    assert_eq!(
        c.store.path,
        Path::new("./data"),
        "relative to the config file's folder"
    );
    let c = Config::parse(
        "[api]\ntokens = [\"env:TOKEN\"]\n",
        Path::new("/etc/hookgate/c.toml"),
        &env,
    )
    .unwrap();
    assert_eq!(c.store.path, Path::new("/etc/hookgate/data"));
}

#[test]
fn secrets_do_not_appear_in_errors_or_debug() {
    let c = parse(&format!(
        "{MINIMAL}[[webhooks]]\nid = \"a\"\nurl = \"https://e.com\"\nevents = [\"*\"]\nsecret = \"env:SECRET\"\n"
    ))
    .unwrap();
    let dbg = format!("{c:?}");
    assert!(
        !dbg.contains("secret-0123456789") && !dbg.contains("tok-0123456789"),
        "{dbg}"
    );
}

#[test]
fn server_settings_have_safe_defaults_and_are_checked_like_serve_would() {
    let c = parse(MINIMAL).unwrap();
    let s = &c.server;
    assert_eq!(
        (s.header_timeout, s.idle_timeout, s.body_timeout, s.max_connections),
        (
            Duration::from_secs(10),
            Duration::from_secs(60),
            Duration::from_secs(30),
            10_000
        )
    );
    assert!(s.tls.is_none() && c.api.client_ca.is_none());
    assert_eq!(s.worker_threads, None, "one thread per CPU unless set");
    let threads = parse(&format!("{MINIMAL}[server]\nworker_threads = 3\n")).unwrap();
    assert_eq!(threads.server.worker_threads, Some(3));
    assert!(parse(&format!("{MINIMAL}[server]\nlisten = \"localhost:9000\"\n")).is_ok());
    assert!(parse(&format!("{MINIMAL}[server]\nlisten = \"[::1]:9000\"\n")).is_ok());
    for (server, expected) in [
        (
            "listen = \"not-an-address\"",
            "c.toml:6:10: server.listen must be host:port",
        ),
        ("listen = \"127.0.0.1\"", "server.listen must be host:port"),
        (
            "tls_cert = \"nope.pem\"",
            "server.tls_cert and server.tls_key go together",
        ),
        (
            "tls_cert = \"missing.pem\"\ntls_key = \"missing.key\"",
            "c.toml:6:12: server TLS: cannot read ./missing.pem: I/O error",
        ),
        (
            "header_timeout = \"0s\"",
            "server.header_timeout must be greater than zero",
        ),
        (
            "max_connections = 0",
            "server.max_connections must be between 1 and 1000000",
        ),
        (
            "worker_threads = 0",
            "c.toml:6:18: server.worker_threads must be between 1 and 1024, got 0",
        ),
    ] {
        let e = parse(&format!("{MINIMAL}[server]\n{server}\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains(expected), "{server}: {e}");
    }
    let e = parse("[api]\ntokens = [\"env:TOKEN\"]\nclient_ca = \"ca.pem\"\n[store]\nbackend = \"redis\"\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("api.client_ca needs HTTPS"), "{e}");
}

#[test]
fn a_value_of_the_wrong_type_is_not_echoed() {
    let e = parse("[api]\ntokens = \"some-token-value\"\n").unwrap_err().to_string();
    assert!(
        e.contains("c.toml:2:10: invalid type: string, expected a sequence"),
        "{e}"
    );
    assert!(!e.contains("some-token-value"), "{e}");
}

#[test]
fn plugin_config_numbers_and_booleans_are_taken_as_strings() {
    let c = parse(&format!(
        "{MINIMAL}[[webhooks]]\nid = \"a\"\nurl = \"https://e.com\"\nevents = [\"*\"]\nsecret = \"env:SECRET\"\n\
         [[webhooks.plugins]]\npath = \"p.wasm\"\nconfig = {{ min = 10, ratio = 0.5, strict = true, name = \"x\", key = \"env:SECRET\" }}\n"
    ))
    .unwrap();
    let config: Vec<(String, String)> = c.webhooks[0].plugins[0].config.clone();
    let get = |k: &str| config.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    assert_eq!(
        (get("min"), get("ratio"), get("strict"), get("name"), get("key")),
        (
            Some("10"),
            Some("0.5"),
            Some("true"),
            Some("x"),
            Some("secret-0123456789")
        )
    );
    let e = parse(&format!(
        "{MINIMAL}[[webhooks]]\nid = \"a\"\nurl = \"https://e.com\"\nevents = [\"*\"]\nsecret = \"env:SECRET\"\n\
         [[webhooks.plugins]]\npath = \"p.wasm\"\nconfig = {{ list = [1, 2] }}\n"
    ))
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("expected a string, number or boolean (plugin config values)"),
        "{e}"
    );
}

#[test]
fn cluster_nodes_select_redis_cluster_and_leave_url_unused() {
    let c = parse(MINIMAL).unwrap();
    assert!(c.store.cluster_nodes.is_empty(), "standalone by default");
    let c = parse(&format!(
        "{MINIMAL}url = \"redis://10.0.0.9:6379\"\ncluster_nodes = [\"redis://10.0.0.1:7000\", \"rediss://:env-pw@redis-2.internal:7001\"]\n"
    ))
    .unwrap();
    assert_eq!(
        c.store.cluster_nodes,
        ["redis://10.0.0.1:7000", "rediss://:env-pw@redis-2.internal:7001"]
    );
    assert_eq!(c.store.url, "redis://10.0.0.9:6379", "kept, but the cluster is used");
}

#[test]
fn bad_cluster_nodes_are_errors_with_positions() {
    let src = "[api]\ntokens = [\"env:TOKEN\"]\n[store]\nbackend = \"redis\"\ncluster_nodes = [\"redis://10.0.0.1:7000\", \"10.0.0.2:7000\", \"http://x:1\", \"redis://:hunter2@h:1/3\", \"env:NOPE\"]\n";
    let errs = parse(src).unwrap_err().to_string();
    for expected in [
        "c.toml:5:43: store.cluster_nodes entries must be redis:// or rediss:// URLs with a host",
        "c.toml:5:60: store.cluster_nodes entries must be redis://",
        "c.toml:5:74: store.cluster_nodes: a Redis Cluster has only database 0",
        "c.toml:5:100: environment variable NOPE is not set",
    ] {
        assert!(errs.contains(expected), "missing {expected:?} in:\n{errs}");
    }
    assert!(!errs.contains("hunter2"), "passwords are not echoed: {errs}");

    let e = parse(&format!("{MINIMAL}cluster_nodes = []\n"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("c.toml:5:17: store.cluster_nodes must name at least one seed node"),
        "{e}"
    );
    let e = parse("[api]\ntokens = [\"env:TOKEN\"]\n[store]\ncluster_nodes = [\"redis://h:7000\"]\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("c.toml:4:17: store.cluster_nodes needs backend = \"redis\""),
        "{e}"
    );
    let e = parse(&format!("{MINIMAL}cluster_nodes = \"redis://h:7000\"\n"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("c.toml:5:17:") && e.contains("expected a sequence"), "{e}");
}

#[test]
fn store_shards_replicas_and_history_bound_are_checked() {
    let c = parse(&format!(
        "{MINIMAL}shards = 8\nwait_replicas = 1\nhistory_max = 4500000\n"
    ))
    .unwrap();
    assert_eq!(
        (c.store.shards, c.store.wait_replicas, c.store.history_max),
        (Some(8), 1, 4_500_000)
    );
    let c = parse(MINIMAL).unwrap();
    assert_eq!(
        (c.store.shards, c.store.wait_replicas, c.store.history_max),
        (None, 0, 0)
    );
    let errs = parse(&format!("{MINIMAL}shards = 0\nwait_replicas = 17\nhistory_max = -1\n"))
        .unwrap_err()
        .to_string();
    for expected in [
        "c.toml:5:10: store.shards must be between 1 and 1024, got 0",
        "c.toml:6:17: store.wait_replicas must be between 0 and 16, got 17",
        "c.toml:7:15: store.history_max must be between 0 and",
    ] {
        assert!(errs.contains(expected), "missing {expected:?} in:\n{errs}");
    }
}
