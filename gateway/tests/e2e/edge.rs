//! The listener at the edge: HTTPS with certificate reload, API mutual TLS,
//! and clients that send too slowly, sit idle, or open too many connections.

use std::time::{Duration, Instant};

use hookgate_testkit::certs::TestCa;
use hookgate_testkit::{RedisServer, TempDir, wait_until};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::*;

fn with_server(toml: &str, server: &str) -> String {
    toml.replace("[server]\n", &format!("[server]\n{server}\n"))
}

fn with_api(toml: &str, api: &str) -> String {
    toml.replace("[api]\n", &format!("[api]\n{api}\n"))
}

/// A client trusting only `ca_pem`, reporting the server certificate.
fn tls_client(ca_pem: &str, identity: Option<&str>) -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut b = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .tls_certs_only([reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap()])
        .tls_info(true);
    if let Some(pem) = identity {
        b = b.identity(reqwest::Identity::from_pem(pem.as_bytes()).unwrap());
    }
    b.build().unwrap()
}

fn peer_cert(resp: &reqwest::Response) -> Vec<u8> {
    resp.extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|i| i.peer_certificate())
        .map(<[u8]>::to_vec)
        .expect("TLS info with the server certificate")
}

/// Reads until the server closes the connection (or `limit` passes):
/// whether it closed, and what it sent.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (bool, String) {
    let mut got = Vec::new();
    let deadline = Instant::now() + limit;
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (true, String::from_utf8_lossy(&got).into_owned()),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => return (false, String::from_utf8_lossy(&got).into_owned()),
        }
    }
}

#[tokio::test]
async fn https_serves_ingest_and_api_and_reloads_its_certificate_without_dropping_connections() {
    let redis = RedisServer::start();
    let dir = TempDir::new("tls");
    let ca = TestCa::new("hookgate test CA");
    let first = ca.server(dir.path(), "server");
    let (toml, _) = config_toml(&redis, FAST_DELIVERY, "");
    let toml = with_server(
        &toml,
        &format!("tls_cert = {:?}\ntls_key = {:?}", first.cert_path, first.key_path),
    );
    let gw = Gateway::start(&toml).await;
    let url = |path: &str| format!("https://{}{path}", gw.addr);

    let held = tls_client(&ca.cert_pem, None);
    let resp = held.get(url("/healthz")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), reqwest::Version::HTTP_2, "ALPN picks HTTP/2");
    let first_der = peer_cert(&resp);
    let resp = held
        .post(url("/api/events"))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({"type": "order.created", "data": {"n": 1}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let http1 = reqwest::Client::builder()
        .http1_only()
        .tls_certs_only([reqwest::Certificate::from_pem(ca.cert_pem.as_bytes()).unwrap()])
        .build()
        .unwrap();
    let resp = http1.get(url("/api/webhooks")).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(
        (resp.status().as_u16(), resp.version()),
        (200, reqwest::Version::HTTP_11)
    );
    assert!(
        reqwest::get(url("/healthz")).await.is_err(),
        "a client that does not trust the private CA is refused"
    );

    // Renew: new files in place. New connections get the new certificate;
    // the held connection goes on.
    let renewed = ca.server(dir.path(), "server");
    assert_ne!(renewed.cert_pem, first.cert_pem);
    let new_der = wait_until(Duration::from_secs(15), "the renewed certificate", || async {
        let fresh = tls_client(&ca.cert_pem, None);
        let resp = fresh.get(url("/healthz")).send().await.ok()?;
        let der = peer_cert(&resp);
        (der != first_der).then_some(der)
    })
    .await;
    assert_ne!(new_der, first_der);
    let resp = held.get(url("/healthz")).send().await.unwrap();
    assert_eq!(resp.status(), 200, "the held connection still works");
    assert_eq!(peer_cert(&resp), first_der, "on the session it started with");

    // A broken renewal keeps the working certificate.
    std::fs::write(&renewed.cert_path, "not a certificate").unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let fresh = tls_client(&ca.cert_pem, None);
    let resp = fresh.get(url("/healthz")).send().await.unwrap();
    assert_eq!((resp.status().as_u16(), peer_cert(&resp)), (200, new_der));
    gw.stop().await;
}

#[tokio::test]
async fn api_mutual_tls_needs_a_certificate_from_the_client_ca() {
    let redis = RedisServer::start();
    let dir = TempDir::new("mtls");
    let ca = TestCa::new("server CA");
    let server = ca.server(dir.path(), "server");
    let clients = TestCa::new("clients CA");
    let client_ca = clients.write(dir.path(), "clients-ca.pem");
    let good = clients.client(dir.path(), "good-client");
    let stranger = TestCa::new("other CA").client(dir.path(), "stranger");
    let (toml, _) = config_toml(&redis, FAST_DELIVERY, "");
    let toml = with_server(
        &toml,
        &format!("tls_cert = {:?}\ntls_key = {:?}", server.cert_path, server.key_path),
    );
    let toml = with_api(&toml, &format!("client_ca = {client_ca:?}"));
    let gw = Gateway::start(&toml).await;
    let url = |path: &str| format!("https://{}{path}", gw.addr);

    let anonymous = tls_client(&ca.cert_pem, None);
    let resp = anonymous
        .get(url("/api/webhooks"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("client certificate"),
        "{body}"
    );
    let resp = anonymous.get(url("/healthz")).send().await.unwrap();
    assert_eq!(resp.status(), 200, "health checks need no client certificate");
    // Ingest, which skips the router, is behind the same check.
    let event = serde_json::json!({"type": "a.b", "data": {}});
    let post_event = |client: &reqwest::Client| client.post(url("/api/events")).bearer_auth(TOKEN).json(&event).send();
    let resp = post_event(&anonymous).await.unwrap();
    assert_eq!(resp.status(), 401, "an event needs a client certificate too");

    let trusted = tls_client(&ca.cert_pem, Some(&good.identity_pem()));
    let resp = trusted
        .get(url("/api/webhooks"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = post_event(&trusted).await.unwrap();
    assert_eq!(resp.status(), 202);
    let resp = trusted.get(url("/api/webhooks")).send().await.unwrap();
    assert_eq!(resp.status(), 401, "the bearer token is still required");

    let foreign = tls_client(&ca.cert_pem, Some(&stranger.identity_pem()));
    assert!(
        foreign
            .get(url("/api/webhooks"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .is_err(),
        "a certificate from another CA fails the handshake"
    );
    gw.stop().await;
}

#[tokio::test]
async fn slow_idle_and_surplus_clients_are_held_off() {
    let redis = RedisServer::start();
    let (toml, _) = config_toml(&redis, FAST_DELIVERY, "");
    let toml = with_server(
        &toml,
        "header_timeout = \"1s\"\nidle_timeout = \"2s\"\nbody_timeout = \"1s\"\nmax_connections = 3",
    );
    let gw = Gateway::start(&toml).await;

    // A client dribbling its request head, one byte every 300 ms: cut off
    // (without the timeout it would be served for as long as it keeps on).
    let mut slow = TcpStream::connect(gw.addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\n").await.unwrap();
    let dribble = async {
        for _ in 0..30 {
            tokio::time::sleep(Duration::from_millis(300)).await;
            if slow.write_all(b"X").await.is_err() {
                return true;
            }
        }
        false
    };
    let cut = tokio::time::timeout(Duration::from_secs(9), dribble).await;
    assert!(matches!(cut, Ok(true)), "a dribbling client is disconnected");

    // A client that connects and says nothing: closed.
    let mut silent = TcpStream::connect(gw.addr).await.unwrap();
    let (closed, _) = read_until_closed(&mut silent, Duration::from_secs(8)).await;
    assert!(closed, "a silent connection is closed");

    // A keep-alive client that goes idle after one request: answered, then
    // closed.
    let mut idle = TcpStream::connect(gw.addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let (closed, text) = read_until_closed(&mut idle, Duration::from_secs(10)).await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(closed, "an idle keep-alive connection is closed");

    // A body that never arrives whole: 408 in the JSON error shape.
    let mut partial = TcpStream::connect(gw.addr).await.unwrap();
    partial
        .write_all(
            format!(
                "POST /api/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\
                 Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"type\":"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let (_, text) = read_until_closed(&mut partial, Duration::from_secs(8)).await;
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("\"request_timeout\""), "{text}");

    // Past max_connections, a new connection waits until one closes.
    drop((slow, silent, idle, partial));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut holders = Vec::new();
    for _ in 0..3 {
        let mut s = TcpStream::connect(gw.addr).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        let mut buf = [0u8; 512];
        let n = s.read(&mut buf).await.unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
        holders.push(s);
    }
    let mut waiting = TcpStream::connect(gw.addr).await.unwrap();
    waiting
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 512];
    let early = tokio::time::timeout(Duration::from_millis(700), waiting.read(&mut buf)).await;
    assert!(
        early.is_err(),
        "the fourth connection is not served while three are open"
    );
    drop(holders.pop());
    let (_, text) = read_until_closed(&mut waiting, Duration::from_secs(10)).await;
    assert!(text.starts_with("HTTP/1.1 200"), "served once a slot is free: {text}");
    gw.stop().await;
}

#[tokio::test]
async fn sensitive_header_values_are_masked_in_every_answer_but_sent() {
    let redis = RedisServer::start();
    let receiver = hookgate_testkit::Receiver::start().await;
    let hooks = webhook(
        "cfg",
        &receiver.url("/cfg"),
        &["order.*"],
        "headers = { \"X-Api-Key\" = \"cfg-key-123\", \"X-Team\" = \"billing\" }",
    );
    let (toml, _) = config_toml(&redis, FAST_DELIVERY, &hooks);
    let gw = Gateway::start(&toml).await;
    let (status, _, created) = gw
        .api(
            "POST",
            "/api/webhooks",
            Some(serde_json::json!({
                "name": "api", "url": receiver.url("/api"), "events": ["order.*"],
                "headers": {"Authorization": "Bearer partner-secret-456", "X-Team": "ops"}
            })),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let (_, _, one) = gw.api("GET", &format!("/api/webhooks/{id}"), None).await;
    let (_, _, list) = gw.api("GET", "/api/webhooks", None).await;
    for shown in [&created, &one, &list] {
        let text = shown.to_string();
        assert!(
            !text.contains("partner-secret-456") && !text.contains("cfg-key-123"),
            "{text}"
        );
    }
    assert_eq!(one["headers"]["Authorization"], "********");
    assert_eq!(one["headers"]["X-Team"], "ops");

    // Sending the masked value back keeps the real one.
    let (status, _, _) = gw
        .api(
            "PATCH",
            &format!("/api/webhooks/{id}"),
            Some(serde_json::json!({"headers": one["headers"].clone()})),
        )
        .await;
    assert_eq!(status, 200);
    let answer = gw.post_event("order.created", "{}").await;
    let got = receiver.wait_for("/api", 1, Duration::from_secs(10)).await;
    assert_eq!(got[0].header("authorization"), Some("Bearer partner-secret-456"));
    let got = receiver.wait_for("/cfg", 1, Duration::from_secs(10)).await;
    assert_eq!(got[0].header("x-api-key"), Some("cfg-key-123"));
    for d in delivery_ids(&answer) {
        let (_, _, detail) = gw.api("GET", &format!("/api/deliveries/{d}"), None).await;
        let text = detail.to_string();
        assert!(
            !text.contains("partner-secret-456") && !text.contains("cfg-key-123"),
            "{text}"
        );
    }
    gw.stop().await;
}

/// `[server] worker_threads` sets how many threads run the gateway's async
/// work (the startup line says so), and a gateway on one thread takes and
/// delivers events as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_threads_sets_the_runtime_and_one_thread_delivers() {
    let redis = RedisServer::start();
    let receiver = hookgate_testkit::Receiver::start().await;
    let (toml, _prefix) = config_toml(&redis, FAST_DELIVERY, &webhook("w", &receiver.url("/hook"), &["*"], ""));
    for (n, threads) in [(1, 1), (2, 3)] {
        let dir = std::sync::Arc::new(TempDir::new("threads"));
        let mut gw = GatewayProcess::spawn(&with_server(&toml, &format!("worker_threads = {threads}")), dir).await;
        let log = gw.log_text();
        let line = log
            .lines()
            .find(|l| l.contains("hookgate listening"))
            .unwrap_or_default();
        assert!(
            line.contains(&format!("worker_threads={threads}")),
            "startup line: {line}"
        );
        let event = serde_json::json!({"type": "order.created", "data": {"threads": threads}});
        post_event_to(&http(), &gw.url("/api/events"), &event).await;
        let got = receiver.wait_for("/hook", n, Duration::from_secs(10)).await;
        let body = String::from_utf8_lossy(&got[n - 1].body);
        assert!(body.contains(&format!("\"threads\":{threads}")), "{body}");
        assert!(gw.terminate(Duration::from_secs(15)).success());
    }
}
