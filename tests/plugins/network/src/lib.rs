//! Tries to connect out (TCP to config `connect`, default 127.0.0.1:9),
//! bind TCP and UDP sockets, resolve a name, and read the environment and
//! arguments; forwards a JSON report of what happened.

#![forbid(unsafe_code)]

use std::net::{TcpListener, TcpStream, ToSocketAddrs, UdpSocket};

use hookgate_plugin_sdk::{Config, Error, Event, Plugin, Verdict, export_plugin};
use serde_json::json;

struct Network;

fn outcome<T: std::fmt::Debug>(r: std::io::Result<T>) -> String {
    match r {
        Ok(v) => format!("ok {v:?}"),
        Err(e) => format!("error: {e}"),
    }
}

impl Plugin for Network {
    fn handle(_event: Event, config: &Config) -> Result<Verdict, Error> {
        let target = config.get("connect").unwrap_or("127.0.0.1:9");
        let report = json!({
            "tcp_connect": outcome(TcpStream::connect(target).map(|_| "connected")),
            "tcp_listen": outcome(TcpListener::bind("127.0.0.1:0").map(|_| "bound")),
            "udp_bind": outcome(UdpSocket::bind("127.0.0.1:0").map(|_| "bound")),
            "dns": outcome("localhost:80".to_socket_addrs().map(|a| a.count())),
            "env": std::env::vars().map(|(k, _)| k).collect::<Vec<_>>(),
            "args": std::env::args().collect::<Vec<_>>(),
            "cwd": outcome(std::env::current_dir()),
        });
        Verdict::forward_json(&report)
    }
}

export_plugin!(Network);
