//! The way out: private roots, client certificates for receivers that ask
//! for them, and an egress proxy that the SSRF guard still watches.

use std::time::Duration;

use hookgate::store::Status;
use hookgate_testkit::certs::{Issued, TestCa};
use hookgate_testkit::proxy::Proxy;
use hookgate_testkit::{Receiver, RedisServer, TempDir};
use serde_json::json;

use crate::common::*;

fn identity_block(name: &str, id: &Issued) -> String {
    format!(
        "\n[[delivery.client_identities]]\nname = {name:?}\ncert = {:?}\nkey = {:?}\n",
        id.cert_path, id.key_path
    )
}

#[tokio::test]
async fn deliveries_trust_private_roots_and_present_client_certificates() {
    let redis = RedisServer::start();
    let dir = TempDir::new("egress-mtls");
    let receivers_ca = TestCa::new("receivers CA");
    let receivers_ca_file = receivers_ca.write(dir.path(), "receivers-ca.pem");
    let clients_ca = TestCa::new("clients CA");
    let partner = clients_ca.client(dir.path(), "partner-a");
    let receiver = Receiver::start_tls(&receivers_ca.server(dir.path(), "receiver"), Some(&clients_ca.cert_pem)).await;

    let delivery = format!(
        "{}{}",
        fast_delivery(&format!("ca_file = {receivers_ca_file:?}\nmax_retries = 0")),
        identity_block("partner-a", &partner)
    );
    let hooks = format!(
        "{}{}",
        webhook(
            "with-id",
            &receiver.url("/with"),
            &["order.*"],
            "client_identity = \"partner-a\""
        ),
        webhook("without-id", &receiver.url("/without"), &["order.*"], "")
    );
    let (toml, prefix) = config_toml(&redis, &delivery, &hooks);
    let gw = Gateway::start(&toml).await;
    let store = store(&redis, &prefix);

    let answer = gw.post_event("order.created", r#"{"n": 1}"#).await;
    let got = receiver.wait_for("/with", 1, Duration::from_secs(10)).await;
    assert_eq!(got[0].header("x-webhook-id"), Some("with-id"));
    let ids = delivery_ids(&answer);
    let without = delivery_to(&answer, "without-id");
    assert_eq!(ids.len(), 2);
    let dead = wait_status(&store, &without, Status::Dead, Duration::from_secs(10)).await;
    let error = dead.attempts[0].error.clone().unwrap_or_default();
    assert!(
        error.contains("CertificateRequired"),
        "no client certificate, no delivery: {error}"
    );
    assert!(receiver.received_on("/without").is_empty());

    // API webhooks name an identity from config.toml; keys never travel.
    let (status, _, body) = gw
        .api(
            "POST",
            "/api/webhooks",
            Some(json!({"name": "api", "url": receiver.url("/api"), "events": ["order.*"], "clientIdentity": "partner-a"})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["clientIdentity"], "partner-a");
    let (status, _, body) = gw
        .api(
            "POST",
            "/api/webhooks",
            Some(json!({"name": "bad", "url": receiver.url("/x"), "events": ["*"], "clientIdentity": "nobody"})),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("clientIdentity:"),
        "{body}"
    );
    gw.post_event("order.created", r#"{"n": 2}"#).await;
    receiver.wait_for("/api", 1, Duration::from_secs(10)).await;
    gw.stop().await;
}

/// Delivers one event to an http and an https receiver through `proxy`
/// (trusted through `ca`'s root, as the https receiver is) and checks the
/// proxy was asked for both: absolute form and a `CONNECT` tunnel.
async fn delivers_through(proxy: &Proxy, redis: &RedisServer, dir: &TempDir, ca: &TestCa) -> Receiver {
    let ca_file = ca.write(dir.path(), "ca.pem");
    let plain = Receiver::start().await;
    let secure = Receiver::start_tls(&ca.server(dir.path(), "receiver"), None).await;
    let delivery = fast_delivery(&format!("proxy = {:?}\nca_file = {ca_file:?}", proxy.url()));
    let hooks = format!(
        "{}{}",
        webhook("plain", &plain.url("/p"), &["order.*"], ""),
        webhook("secure", &secure.url("/s"), &["order.*"], "")
    );
    let (toml, _) = config_toml(redis, &delivery, &hooks);
    let gw = Gateway::start(&toml).await;
    gw.post_event("order.created", r#"{"n": 1}"#).await;
    plain.wait_for("/p", 1, Duration::from_secs(10)).await;
    secure.wait_for("/s", 1, Duration::from_secs(10)).await;
    let targets = proxy.targets();
    assert!(
        targets.contains(&plain.url("/p")),
        "http through the proxy: {targets:?}"
    );
    assert!(
        targets.contains(&secure.addr().to_string()),
        "https through a CONNECT tunnel: {targets:?}"
    );
    gw.stop().await;
    plain
}

#[tokio::test]
async fn deliveries_go_through_the_egress_proxy_which_never_reaches_private_destinations() {
    let redis = RedisServer::start();
    let dir = TempDir::new("egress-proxy");
    let ca = TestCa::new("receivers CA");
    let proxy = Proxy::start().await;
    let plain = delivers_through(&proxy, &redis, &dir, &ca).await;

    // Private destinations not allowed: the proxy is never asked for one.
    let before = proxy.targets().len();
    let delivery = fast_delivery(&format!(
        "proxy = {:?}\nallow_private_destinations = false\nmax_retries = 0",
        proxy.url()
    ));
    let hooks = webhook("inside", &plain.url("/inside"), &["order.*"], "");
    let (toml, prefix) = config_toml(&redis, &delivery, &hooks);
    let gw = Gateway::start(&toml).await;
    let answer = gw.post_event("order.created", r#"{"n": 2}"#).await;
    let id = delivery_ids(&answer).remove(0);
    let dead = wait_status(&store(&redis, &prefix), &id, Status::Dead, Duration::from_secs(10)).await;
    let error = dead.attempts[0].error.clone().unwrap_or_default();
    assert!(
        error.contains("destination refused") && error.contains("loopback"),
        "{error}"
    );
    assert_eq!(proxy.targets().len(), before, "the proxy saw nothing");
    assert!(plain.received_on("/inside").is_empty());
    gw.stop().await;
}

#[tokio::test]
async fn deliveries_go_through_an_https_egress_proxy() {
    // TLS to the proxy itself (trusted through `ca_file`), in HTTP/1.1 even
    // though the proxy also offers HTTP/2; TLS end to end inside its tunnel.
    let redis = RedisServer::start();
    let dir = TempDir::new("egress-https-proxy");
    let ca = TestCa::new("private CA");
    let proxy = Proxy::start_tls(&ca.server(dir.path(), "proxy")).await;
    assert!(proxy.url().starts_with("https://"), "{}", proxy.url());
    delivers_through(&proxy, &redis, &dir, &ca).await;
}
