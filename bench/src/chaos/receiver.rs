//! The chaos suite's receiver: records every delivery id it answered 2xx
//! (and how often), and misbehaves on request: 500s, answers slower than
//! the gateway's timeout, connections dropped without an answer, or slow
//! but in-time answers.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use tokio::task::JoinHandle;

use crate::http::{empty, listen_loopback, spawn_server_abortable};
use crate::tls::ConnCounters;

/// How the receiver answers right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// 204 at once.
    None,
    /// 500 at once.
    Status500,
    /// 204 after this long (longer than the gateway's timeout: it gives up).
    Hang(Duration),
    /// Reads the request and drops the connection without an answer.
    Drop,
    /// 204 after this long (shorter than the gateway's timeout).
    Slow(Duration),
}

impl Fault {
    pub fn name(self) -> String {
        match self {
            Fault::None => "answers 204".into(),
            Fault::Status500 => "answers 500".into(),
            Fault::Hang(d) => format!("answers after {} ms (past the timeout)", d.as_millis()),
            Fault::Drop => "drops the connection".into(),
            Fault::Slow(d) => format!("answers after {} ms", d.as_millis()),
        }
    }
}

struct State {
    fault: Mutex<Fault>,
    /// Delivery id -> 2xx answers given.
    delivered: Mutex<HashMap<String, u32>>,
    requests: AtomicU64,
    last_new: Mutex<Option<Instant>>,
}

/// A running receiver; stops when dropped.
pub struct FaultReceiver {
    addr: SocketAddr,
    state: Arc<State>,
    server: JoinHandle<()>,
}

impl Drop for FaultReceiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FaultReceiver {
    pub fn start() -> anyhow::Result<Self> {
        let listener = listen_loopback()?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            fault: Mutex::new(Fault::None),
            delivered: Mutex::new(HashMap::new()),
            requests: AtomicU64::new(0),
            last_new: Mutex::new(None),
        });
        let s = state.clone();
        let server = spawn_server_abortable(listener, None, Arc::new(ConnCounters::default()), move |req| {
            handle(s.clone(), req)
        });
        Ok(FaultReceiver { addr, state, server })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn set(&self, fault: Fault) {
        *self.state.fault.lock().unwrap_or_else(|e| e.into_inner()) = fault;
    }

    /// Delivery id -> 2xx answers given to it.
    pub fn delivered(&self) -> HashMap<String, u32> {
        self.state.delivered.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn distinct(&self) -> usize {
        self.state.delivered.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn requests(&self) -> u64 {
        self.state.requests.load(Ordering::Relaxed)
    }

    /// When a delivery id was first answered 2xx last.
    pub fn last_new(&self) -> Option<Instant> {
        *self.state.last_new.lock().unwrap_or_else(|e| e.into_inner())
    }
}

async fn handle(state: Arc<State>, req: Request<Incoming>) -> Option<hyper::Response<crate::http::Body>> {
    state.requests.fetch_add(1, Ordering::Relaxed);
    let id = req
        .headers()
        .get("x-delivery-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let _ = req.into_body().collect().await.ok()?;
    let fault = *state.fault.lock().unwrap_or_else(|e| e.into_inner());
    match fault {
        Fault::None => {}
        Fault::Status500 => return Some(empty(StatusCode::INTERNAL_SERVER_ERROR)),
        Fault::Hang(d) | Fault::Slow(d) => tokio::time::sleep(d).await,
        Fault::Drop => return None,
    }
    if let Some(id) = id {
        let mut delivered = state.delivered.lock().unwrap_or_else(|e| e.into_inner());
        let n = delivered.entry(id).or_insert(0);
        *n += 1;
        if *n == 1 {
            *state.last_new.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
        }
    }
    Some(empty(StatusCode::NO_CONTENT))
}
