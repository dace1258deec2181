//! A real `redis-server` on a free port, with append-only persistence so a
//! test can kill it (SIGKILL) and restart it with its data.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{TempDir, free_port};

/// A redis-server child process, killed on drop.
#[derive(Debug)]
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: TempDir,
    /// TLS only (no plain port): the server's certificate, key and the CA
    /// that signed it.
    tls: Option<[PathBuf; 3]>,
}

fn binary() -> PathBuf {
    let path = std::env::var_os("REDIS_SERVER").map_or_else(|| PathBuf::from("redis-server"), PathBuf::from);
    match Command::new(&path).arg("--version").output() {
        Ok(out) if out.status.success() => path,
        _ => panic!(
            "redis-server not found (looked for {}). The integration tests start their own Redis. \
             Install it with `sudo apt-get install -y redis-server` (Debian/Ubuntu) or set REDIS_SERVER=/path/to/redis-server",
            path.display()
        ),
    }
}

impl RedisServer {
    /// Starts a server on a free port and waits until it answers PING.
    pub fn start() -> Self {
        Self::launch("redis", None)
    }

    /// Starts a server that speaks TLS only, with `server`'s certificate
    /// (signed by the CA in `ca_file`); waits until it accepts connections.
    pub fn start_tls(server: &crate::certs::Issued, ca_file: &std::path::Path) -> Self {
        let files = [server.cert_path.clone(), server.key_path.clone(), ca_file.to_path_buf()];
        Self::launch("redis-tls", Some(files))
    }

    fn launch(name: &str, tls: Option<[PathBuf; 3]>) -> Self {
        let mut s = RedisServer {
            child: None,
            port: free_port(),
            dir: TempDir::new(name),
            tls,
        };
        s.spawn();
        s
    }

    /// `redis://127.0.0.1:<port>`, or `rediss://localhost:<port>` for a
    /// TLS server (its certificate names localhost).
    pub fn url(&self) -> String {
        match self.tls {
            None => format!("redis://127.0.0.1:{}", self.port),
            Some(_) => format!("rediss://localhost:{}", self.port),
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    #[allow(clippy::disallowed_methods, reason = "synchronous set-up, before any gateway runs")]
    fn spawn(&mut self) {
        let mut cmd = Command::new(binary());
        match &self.tls {
            None => cmd.args(["--bind", "127.0.0.1", "--port", &self.port.to_string()]),
            Some([cert, key, ca]) => cmd
                .args([
                    "--bind",
                    "127.0.0.1",
                    "--port",
                    "0",
                    "--tls-port",
                    &self.port.to_string(),
                ])
                .arg("--tls-cert-file")
                .arg(cert)
                .arg("--tls-key-file")
                .arg(key)
                .arg("--tls-ca-cert-file")
                .arg(ca)
                .args(["--tls-auth-clients", "no"]),
        };
        let child = cmd
            .args(["--save", "", "--appendonly", "yes", "--appendfsync", "always"])
            .arg("--dir")
            .arg(self.dir.path())
            .args(["--daemonize", "no", "--protected-mode", "no", "--loglevel", "warning"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.answers_ping() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not start on port {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether it answers `PING` (a TLS server: whether it accepts
    /// connections).
    fn answers_ping(&self) -> bool {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        if self.tls.is_some() {
            return true;
        }
        let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
        if s.write_all(b"PING\r\n").is_err() {
            return false;
        }
        let mut buf = [0u8; 16];
        matches!(s.read(&mut buf), Ok(n) if buf[..n].starts_with(b"+PONG"))
    }

    /// Kills the server with SIGKILL (no shutdown, no final save).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port with the same data folder.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
