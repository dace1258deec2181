//! The outbound client's kept connections and its errors, against a plain
//! TCP receiver on loopback that counts the connections it accepts.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::http::HeaderMap;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use url::Url;

use super::client::{Outbound, SendError};
use super::pool::IDLE_TIMEOUT;

/// How the receiver answers each request.
#[derive(Clone, Copy)]
enum Answer {
    /// `200 ok`, and keeps the connection open.
    KeepAlive,
    /// `200 ok` without `Connection: close`, then closes the connection.
    ThenClose,
    /// `200 ok`, and closes the connection a moment later.
    CloseSoon,
    /// A body too long to drain for reuse.
    Huge,
    /// Never answers.
    Silent,
    /// Closes the connection without an answer.
    HangUp,
}

struct Receiver {
    url: Url,
    connections: Arc<AtomicUsize>,
    requests: Arc<AtomicUsize>,
}

async fn receiver(answer: Answer) -> Receiver {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = Url::parse(&format!("http://{}/hook?x=1", listener.local_addr().unwrap())).unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let requests = Arc::new(AtomicUsize::new(0));
    let (c, r) = (connections.clone(), requests.clone());
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            c.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(serve(stream, answer, r.clone()));
        }
    });
    Receiver {
        url,
        connections,
        requests,
    }
}

/// Answers requests on one connection until the client closes it.
async fn serve(mut stream: TcpStream, answer: Answer, requests: Arc<AtomicUsize>) {
    let mut buf = Vec::new();
    loop {
        let Some(end) = request_end(&buf) else {
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
        assert!(head.starts_with("post /hook?x=1 http/1.1\r\n"), "{head}");
        assert!(head.contains("\r\nhost: 127.0.0.1:"), "{head}");
        buf.drain(..end);
        requests.fetch_add(1, Ordering::SeqCst);
        match answer {
            Answer::Silent => {
                // Keep the connection open until the client gives up.
                let _ = stream.read(&mut [0u8; 1]).await;
                return;
            }
            Answer::HangUp => return,
            _ => {}
        }
        let body = match answer {
            Answer::Huge => "x".repeat(100 * 1024),
            _ => "ok".to_owned(),
        };
        let reply = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}", body.len());
        if stream.write_all(reply.as_bytes()).await.is_err() {
            return;
        }
        match answer {
            Answer::ThenClose => return,
            Answer::CloseSoon => {
                tokio::time::sleep(Duration::from_millis(200)).await;
                return;
            }
            _ => {}
        }
    }
}

/// Where the first whole request in `buf` ends (head and a
/// `content-length` body).
fn request_end(buf: &[u8]) -> Option<usize> {
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map_or(0, |v| v.trim().parse::<usize>().unwrap());
    (buf.len() >= head_end + length).then_some(head_end + length)
}

fn outbound() -> Outbound {
    let config = crate::config::Config::parse(
        "[api]\ntokens = [\"token-0123456789\"]\n[store]\nbackend = \"redis\"\n\
         [delivery]\nallow_private_destinations = true\n",
        std::path::Path::new("c.toml"),
        &|_| None,
    )
    .unwrap();
    Outbound::new(&config.delivery, 4).unwrap()
}

async fn send(client: &Outbound, url: &Url, timeout: Duration) -> Result<super::client::Answer, SendError> {
    client
        .post(url, None, HeaderMap::new(), Bytes::from_static(b"{}"), timeout)
        .await
}

async fn post(client: &Outbound, url: &Url) {
    let answer = send(client, url, Duration::from_secs(5)).await.unwrap();
    assert_eq!(answer.status, 200);
}

/// `n` requests one after another to a receiver answering with `answer`.
async fn posted_in_turn(answer: Answer, n: usize) -> Receiver {
    let r = receiver(answer).await;
    let client = outbound();
    for _ in 0..n {
        post(&client, &r.url).await;
    }
    assert_eq!(r.requests.load(Ordering::SeqCst), n);
    r
}

#[tokio::test]
async fn one_connection_serves_requests_one_after_another() {
    let r = posted_in_turn(Answer::KeepAlive, 20).await;
    assert_eq!(r.connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn concurrent_requests_open_connections_that_are_then_reused() {
    let r = receiver(Answer::KeepAlive).await;
    let client = outbound();
    for _ in 0..5 {
        let rounds = (0..4).map(|_| post(&client, &r.url));
        futures_util::future::join_all(rounds).await;
    }
    assert_eq!(r.requests.load(Ordering::SeqCst), 20);
    let opened = r.connections.load(Ordering::SeqCst);
    assert!((1..=4).contains(&opened), "{opened} connections for 4 at a time");
}

#[tokio::test]
async fn a_receiver_closing_kept_connections_costs_no_request() {
    let r = posted_in_turn(Answer::ThenClose, 30).await;
    assert_eq!(r.connections.load(Ordering::SeqCst), 30);
}

#[tokio::test]
async fn an_answer_too_long_to_drain_closes_its_connection() {
    let r = posted_in_turn(Answer::Huge, 3).await;
    assert_eq!(r.connections.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn idle_connections_are_closed_after_the_idle_timeout() {
    let r = receiver(Answer::KeepAlive).await;
    let client = outbound();
    post(&client, &r.url).await;
    client.sweep_idle(Instant::now() + IDLE_TIMEOUT / 2);
    post(&client, &r.url).await;
    assert_eq!(r.connections.load(Ordering::SeqCst), 1, "kept while not idle for long");
    client.sweep_idle(Instant::now() + IDLE_TIMEOUT);
    post(&client, &r.url).await;
    assert_eq!(r.connections.load(Ordering::SeqCst), 2, "closed after the idle timeout");
}

#[tokio::test]
async fn a_connection_the_receiver_closed_while_idle_is_dropped_by_the_sweep() {
    let r = receiver(Answer::KeepAlive).await;
    let closing = receiver(Answer::CloseSoon).await;
    let client = outbound();
    post(&client, &r.url).await;
    post(&client, &closing.url).await;
    assert_eq!(client.idle_connections(), 2, "both kept after their answers");
    // The sweep drops it once the close is seen.
    let deadline = Instant::now() + Duration::from_secs(5);
    while client.idle_connections() > 1 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        client.sweep_idle(Instant::now());
    }
    assert_eq!(
        client.idle_connections(),
        1,
        "the closed one dropped, the open one kept"
    );
    post(&client, &r.url).await;
    assert_eq!(r.connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn refused_silent_and_hung_up_receivers_are_told_apart_without_the_url() {
    let client = outbound();
    // Refused: a port nothing listens on any more.
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = Url::parse(&format!(
        "http://user:hunter2@{}/secret-path",
        closed.local_addr().unwrap()
    ))
    .unwrap();
    drop(closed);
    let err = send(&client, &url, Duration::from_secs(5)).await.unwrap_err();
    assert!(matches!(err, SendError::Connect(_)), "{err:?}");
    let text = err.describe();
    assert!(text.starts_with("connect error"), "{text}");
    assert!(!text.contains("hunter2") && !text.contains("secret-path"), "{text}");

    let silent = receiver(Answer::Silent).await;
    let err = send(&client, &silent.url, Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(matches!(err, SendError::Timeout(_)), "{err:?}");

    let hung_up = receiver(Answer::HangUp).await;
    let err = send(&client, &hung_up.url, Duration::from_secs(5)).await.unwrap_err();
    assert!(matches!(err, SendError::Other(_)), "{err:?}");
    // The request was sent, so it is not sent again on another connection.
    assert_eq!(hung_up.requests.load(Ordering::SeqCst), 1);
    assert_eq!(hung_up.connections.load(Ordering::SeqCst), 1);
}
