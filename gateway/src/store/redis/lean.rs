//! The connection a standalone Redis's commands go over: one TCP
//! connection, commands written by the task that sends them, replies read
//! by a task of the connection's own and handed back in order.
//!
//! The redis crate's multiplexed connection sends every command through a
//! channel to its connection task, packs it a second time into that task's
//! write buffer, and parses replies with a general parser built on
//! `combine`; at a moderate rate, where each event and each outcome has a
//! script of its own, that was the largest single piece of the gateway's
//! instructions per delivery (BENCHMARKS.md). Here a command is packed once
//! into the connection's buffer and written by its caller, and replies are
//! read by [`super::resp`], which looks at a partial reply without building
//! anything.
//!
//! Order is the whole protocol: a caller writes its command and queues the
//! sender its reply will come back on under one lock, so the queue is in
//! the order the commands went out, and the reader hands each reply to the
//! oldest sender. The same connection carries the writes and the `WAIT`
//! that counts their replicas.
//!
//! Failures are the redis crate's: a connection that cannot be made fails
//! the command at once (the API answers 503), a lost connection fails the
//! commands waiting on it, and the next command connects again. A command
//! whose writer is cancelled halfway through leaves the connection broken,
//! never half a command followed by the next one.

use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ::redis::{Cmd, ConnectionAddr, ConnectionInfo, ProtocolVersion, RedisError, RedisResult, Value};
use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::resp;

/// Where the reply to one command will be sent.
type Reply = oneshot::Sender<RedisResult<Value>>;

/// Bytes a read asks the socket for, at least.
const READ_CHUNK: usize = 64 * 1024;
/// A buffer grown past this by one large command or reply is let go once
/// it is empty again, so one import does not keep megabytes for good.
const KEEP_AT_MOST: usize = 1 << 20;
/// After a connection attempt fails, commands fail at once for this long
/// instead of each trying (and waiting) again.
const AFTER_A_FAILED_CONNECT: Duration = Duration::from_millis(100);

/// How to reach a standalone Redis over plain TCP, and log in.
struct Target {
    host: String,
    port: u16,
    username: Option<String>,
    password: Option<String>,
    db: i64,
}

/// A lean connection to one standalone Redis (see the module docs).
pub(crate) struct Lean {
    target: Target,
    connect_timeout: Duration,
    response_timeout: Duration,
    state: tokio::sync::Mutex<State>,
}

/// The connection, if any, and the last failed attempt to make one.
#[derive(Default)]
struct State {
    link: Option<Link>,
    failed: Option<(Instant, io::ErrorKind)>,
}

/// One TCP connection: its write half, the buffer commands are packed in,
/// and the reader task with the queue of replies it owes.
struct Link {
    write: OwnedWriteHalf,
    packed: Vec<u8>,
    owed: Arc<Owed>,
    reader: JoinHandle<()>,
}

impl Drop for Link {
    fn drop(&mut self) {
        self.reader.abort();
        self.owed.fail("the connection to Redis was closed");
    }
}

/// The replies a connection owes, oldest first; `None` once the connection
/// is broken, when every sender that was queued has had an error.
struct Owed(Mutex<Option<VecDeque<Reply>>>);

impl Default for Owed {
    fn default() -> Self {
        Owed(Mutex::new(Some(VecDeque::new())))
    }
}

impl Owed {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<VecDeque<Reply>>> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues `reply`, unless the connection is broken.
    fn push(&self, reply: Reply) -> Result<(), Reply> {
        match &mut *self.lock() {
            Some(queue) => {
                queue.push_back(reply);
                Ok(())
            }
            None => Err(reply),
        }
    }

    /// The oldest reply owed; `None` if none is (or the connection is broken).
    fn pop(&self) -> Option<Reply> {
        self.lock().as_mut()?.pop_front()
    }

    fn is_broken(&self) -> bool {
        self.lock().is_none()
    }

    /// Marks the connection broken and fails every reply still owed.
    fn fail(&self, why: &'static str) {
        let owed = self.lock().take();
        for reply in owed.into_iter().flatten() {
            let _ = reply.send(Err(lost(why)));
        }
    }
}

/// The error a command gets when its connection is gone: an I/O error, as
/// the redis crate reports a dropped connection.
fn lost(why: &'static str) -> RedisError {
    io::Error::new(io::ErrorKind::ConnectionAborted, why).into()
}

/// Breaks the connection if dropped before [`WriteGuard::done`]: a command
/// cancelled halfway through its write.
struct WriteGuard<'a>(Option<&'a Owed>);

impl WriteGuard<'_> {
    fn done(mut self) {
        self.0 = None;
    }
}

impl Drop for WriteGuard<'_> {
    fn drop(&mut self) {
        if let Some(owed) = self.0 {
            owed.fail("a command to Redis was cancelled while being written");
        }
    }
}

impl Lean {
    /// A connection for `info`, if it is one this module speaks: plain TCP
    /// and RESP2. TLS, Unix sockets and RESP3 stay with the redis crate.
    pub(crate) fn for_info(
        info: &ConnectionInfo,
        connect_timeout: Duration,
        response_timeout: Duration,
    ) -> Option<Self> {
        let ConnectionAddr::Tcp(host, port) = info.addr() else {
            return None;
        };
        let redis = info.redis_settings();
        if redis.protocol() != ProtocolVersion::RESP2 {
            return None;
        }
        Some(Lean {
            target: Target {
                host: host.clone(),
                port: *port,
                username: redis.username().map(str::to_owned),
                password: redis.password().map(str::to_owned),
                db: redis.db(),
            },
            connect_timeout,
            response_timeout,
            state: tokio::sync::Mutex::new(State::default()),
        })
    }

    /// Sends `cmd` and waits for its reply (a server error is a
    /// [`Value::ServerError`], as the redis crate's connections return it),
    /// all within the response timeout: connecting, waiting for the
    /// connection, writing (a write that cannot finish leaves the connection
    /// broken) and the reply.
    pub(crate) async fn request(&self, cmd: &Cmd) -> RedisResult<Value> {
        match tokio::time::timeout(self.response_timeout, self.exchange(cmd)).await {
            Ok(answer) => answer,
            Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "Redis did not answer in time").into()),
        }
    }

    async fn exchange(&self, cmd: &Cmd) -> RedisResult<Value> {
        let reply = {
            let mut state = self.state.lock().await;
            let State { link, failed } = &mut *state;
            let link = match link {
                Some(live) if !live.owed.is_broken() => live,
                slot => {
                    *slot = None;
                    if let Some((at, kind)) = *failed
                        && at.elapsed() < AFTER_A_FAILED_CONNECT
                    {
                        return Err(io::Error::new(kind, "connecting to Redis failed a moment ago").into());
                    }
                    match self.connect().await {
                        Ok(live) => {
                            *failed = None;
                            slot.insert(live)
                        }
                        Err(e) => {
                            *failed = Some((Instant::now(), failure_kind(&e)));
                            return Err(e);
                        }
                    }
                }
            };
            link.packed.clear();
            cmd.write_packed_command(&mut link.packed);
            send(link).await?
        };
        answer(reply).await
    }

    /// A new connection, logged in and on the configured database.
    async fn connect(&self) -> RedisResult<Link> {
        let t = &self.target;
        let stream =
            match tokio::time::timeout(self.connect_timeout, TcpStream::connect((t.host.as_str(), t.port))).await {
                Ok(stream) => stream?,
                Err(_) => return Err(io::Error::new(io::ErrorKind::TimedOut, "connecting to Redis timed out").into()),
            };
        stream.set_nodelay(true)?;
        let (read, write) = stream.into_split();
        let owed = Arc::new(Owed::default());
        let reader = tokio::spawn(read_replies(read, owed.clone()));
        let mut link = Link {
            write,
            packed: Vec::with_capacity(4096),
            owed,
            reader,
        };
        let mut setup = Vec::new();
        if let Some(password) = &t.password {
            let mut auth = ::redis::cmd("AUTH");
            if let Some(user) = &t.username {
                auth.arg(user);
            }
            setup.push(auth.arg(password).clone());
        }
        if t.db != 0 {
            setup.push(::redis::cmd("SELECT").arg(t.db).clone());
        }
        for cmd in setup {
            link.packed.clear();
            cmd.write_packed_command(&mut link.packed);
            let reply = send(&mut link).await?;
            // The server's error says what failed (never the password).
            answer(reply).await?.extract_error()?;
        }
        Ok(link)
    }
}

/// What kind of failure a failed connect was, for the commands that fail
/// after it without trying again.
fn failure_kind(e: &RedisError) -> io::ErrorKind {
    if e.is_connection_refusal() {
        io::ErrorKind::ConnectionRefused
    } else if e.is_timeout() {
        io::ErrorKind::TimedOut
    } else {
        io::ErrorKind::ConnectionAborted
    }
}

/// The reply queued by [`send`].
async fn answer(reply: oneshot::Receiver<RedisResult<Value>>) -> RedisResult<Value> {
    reply
        .await
        .unwrap_or_else(|_| Err(lost("the connection to Redis was closed")))
}

/// Writes the command packed in `link` and queues its reply.
async fn send(link: &mut Link) -> RedisResult<oneshot::Receiver<RedisResult<Value>>> {
    let (tx, rx) = oneshot::channel();
    if link.owed.push(tx).is_err() {
        return Err(lost("the connection to Redis was lost"));
    }
    let guard = WriteGuard(Some(&link.owed));
    let written = link.write.write_all(&link.packed).await;
    guard.done();
    if link.packed.capacity() > KEEP_AT_MOST {
        link.packed = Vec::with_capacity(4096);
    }
    if let Err(e) = written {
        link.owed.fail("writing to Redis failed");
        return Err(e.into());
    }
    Ok(rx)
}

/// The connection's reader: each whole reply to the oldest sender owed one,
/// until the connection ends or sends what is not RESP2.
async fn read_replies(mut read: OwnedReadHalf, owed: Arc<Owed>) {
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let why = 'read: loop {
        if buf.is_empty() && buf.capacity() > KEEP_AT_MOST {
            buf = BytesMut::with_capacity(READ_CHUNK);
        }
        if buf.capacity() - buf.len() < READ_CHUNK / 4 {
            buf.reserve(READ_CHUNK);
        }
        match read.read_buf(&mut buf).await {
            Ok(0) => break "Redis closed the connection",
            Ok(_) => {}
            Err(_) => break "reading from Redis failed",
        }
        loop {
            let parsed = match resp::frame(&buf) {
                Ok(Some(len)) => resp::decode(&buf[..len]).map(|value| (len, value)),
                Ok(None) => break,
                Err(e) => Err(e),
            };
            let (len, value) = match parsed {
                Ok(parsed) => parsed,
                Err(resp::Malformed(what)) => {
                    tracing::warn!(what, "Redis sent a reply that is not RESP2");
                    break 'read "Redis sent a reply that is not RESP2";
                }
            };
            buf.advance(len);
            let Some(reply) = owed.pop() else {
                break 'read "Redis sent a reply to no command";
            };
            let _ = reply.send(Ok(value));
        }
    };
    // Commands waiting on the connection fail with `why`; the next one
    // connects again. Logged once per connection, never with its address
    // or password.
    tracing::warn!(
        reason = why,
        "the connection to Redis was lost; the next command reconnects"
    );
    owed.fail(why);
}

#[cfg(test)]
mod tests {
    use super::*;
    use hookgate_testkit::RedisServer;

    fn lean(url: &str) -> Lean {
        lean_waiting(url, Duration::from_secs(2))
    }

    fn lean_waiting(url: &str, response_timeout: Duration) -> Lean {
        let info = ::redis::IntoConnectionInfo::into_connection_info(url).unwrap();
        Lean::for_info(&info, Duration::from_secs(2), response_timeout).unwrap()
    }

    fn cmd(name: &str, args: &[&[u8]]) -> Cmd {
        let mut cmd = ::redis::cmd(name);
        for arg in args {
            cmd.arg(*arg);
        }
        cmd
    }

    #[test]
    fn only_plain_tcp_and_resp2_are_spoken_here() {
        let info = |url: &str| ::redis::IntoConnectionInfo::into_connection_info(url).unwrap();
        let t = Duration::from_secs(1);
        assert!(Lean::for_info(&info("redis://127.0.0.1:6379/2"), t, t).is_some());
        assert!(Lean::for_info(&info("redis://127.0.0.1:6379/?protocol=resp3"), t, t).is_none());
        assert!(Lean::for_info(&info("unix:///run/redis.sock"), t, t).is_none());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn commands_sent_at_once_from_many_tasks_each_get_their_own_reply() {
        let redis = RedisServer::start();
        let lean = Arc::new(lean(&redis.url()));
        // A reply larger than a read, so it arrives in pieces, and larger
        // than the buffers keep.
        let big = vec![b'x'; KEEP_AT_MOST + 3 * READ_CHUNK + 17];
        assert_eq!(lean.request(&cmd("SET", &[b"big", &big])).await.unwrap(), Value::Okay);
        let packed = lean.state.lock().await.link.as_ref().map(|l| l.packed.capacity());
        assert!(packed.is_some_and(|c| c <= KEEP_AT_MOST), "{packed:?}");
        let tasks: Vec<_> = (0..300)
            .map(|i| {
                let lean = lean.clone();
                tokio::spawn(async move {
                    let arg = format!("m{i}");
                    let answer = match i % 10 {
                        0 => lean.request(&cmd("GET", &[b"big"])).await,
                        _ => lean.request(&cmd("ECHO", &[arg.as_bytes()])).await,
                    };
                    (i, answer.unwrap())
                })
            })
            .collect();
        for task in tasks {
            let (i, answer) = task.await.unwrap();
            let want = match i % 10 {
                0 => big.clone(),
                _ => format!("m{i}").into_bytes(),
            };
            assert_eq!(answer, Value::BulkString(want), "command {i}");
        }
        let error = lean.request(&cmd("EVALSHA", &[b"0000", b"0"])).await.unwrap();
        let error = error.extract_error().unwrap_err();
        assert_eq!(
            error.kind(),
            ::redis::ErrorKind::Server(::redis::ServerErrorKind::NoScript)
        );
    }

    #[tokio::test]
    async fn a_lost_redis_fails_the_command_and_the_next_one_connects_again() {
        let mut redis = RedisServer::start();
        let lean = lean(&redis.url());
        assert_eq!(lean.request(&cmd("SET", &[b"k", b"v"])).await.unwrap(), Value::Okay);
        redis.kill();
        let e = lean.request(&cmd("GET", &[b"k"])).await.unwrap_err();
        assert!(e.is_io_error(), "{e}");
        let e = lean.request(&cmd("GET", &[b"k"])).await.unwrap_err();
        assert!(e.is_io_error() && e.is_connection_refusal(), "{e}");
        redis.restart();
        // Past the moment after a failed connect in which commands fail at once.
        tokio::time::sleep(AFTER_A_FAILED_CONNECT).await;
        assert_eq!(
            lean.request(&cmd("GET", &[b"k"])).await.unwrap(),
            Value::BulkString(b"v".to_vec()),
            "connected again (the append-only file kept the key)"
        );
    }

    #[tokio::test]
    async fn the_password_and_the_database_in_the_url_are_used() {
        let redis = RedisServer::start();
        let open = lean(&redis.url());
        let set = cmd("CONFIG", &[b"SET", b"requirepass", b"s3cret-pw"]);
        assert_eq!(open.request(&set).await.unwrap(), Value::Okay);
        let url = |auth: &str, db: u8| redis.url().replace("redis://", &format!("redis://{auth}@")) + &format!("/{db}");
        let db3 = lean(&url(":s3cret-pw", 3));
        assert_eq!(db3.request(&cmd("SET", &[b"k", b"three"])).await.unwrap(), Value::Okay);
        let default_user = lean(&url("default:s3cret-pw", 0));
        assert_eq!(default_user.request(&cmd("GET", &[b"k"])).await.unwrap(), Value::Nil);
        assert_eq!(
            default_user.request(&cmd("SELECT", &[b"3"])).await.unwrap(),
            Value::Okay
        );
        assert_eq!(
            default_user.request(&cmd("GET", &[b"k"])).await.unwrap(),
            Value::BulkString(b"three".to_vec())
        );
        let e = lean(&url(":wrong-pw", 0)).request(&cmd("PING", &[])).await.unwrap_err();
        let text = format!("{e} {e:?}");
        assert!(!text.contains("wrong-pw") && !text.contains("s3cret"), "{text}");
        assert!(text.contains("WRONGPASS"), "{text}");
    }

    #[tokio::test]
    async fn a_command_cancelled_while_being_written_breaks_the_connection() {
        // A server that accepts and never reads: a large command fills the
        // socket's buffers and its write waits.
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let lean = lean(&format!("redis://{}", silent.local_addr().unwrap()));
        let huge = vec![b'x'; 64 << 20];
        let cancelled =
            tokio::time::timeout(Duration::from_millis(200), lean.request(&cmd("SET", &[b"k", &huge]))).await;
        assert!(cancelled.is_err(), "the write should still be waiting");
        let state = lean.state.lock().await;
        assert!(
            state.link.as_ref().is_some_and(|l| l.owed.is_broken()),
            "half a command is on the wire: the next command must not follow it"
        );
    }

    #[tokio::test]
    async fn a_redis_that_does_not_answer_or_read_times_out() {
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let lean = lean_waiting(
            &format!("redis://{}", silent.local_addr().unwrap()),
            Duration::from_millis(300),
        );
        let test_limit = Duration::from_secs(3);
        // A command that is written and never answered.
        let e = tokio::time::timeout(test_limit, lean.request(&cmd("PING", &[])))
            .await
            .unwrap()
            .unwrap_err();
        assert!(e.is_timeout(), "{e}");
        // A command too large to be written to a server that does not read:
        // the write gives up at the same limit and the connection is broken.
        let huge = vec![b'x'; 64 << 20];
        let e = tokio::time::timeout(test_limit, lean.request(&cmd("SET", &[b"k", &huge])))
            .await
            .expect("the write must not wait past the response timeout")
            .unwrap_err();
        assert!(e.is_timeout(), "{e}");
        assert!(
            lean.state
                .lock()
                .await
                .link
                .as_ref()
                .is_some_and(|l| l.owed.is_broken())
        );
    }

    #[tokio::test]
    async fn a_reply_that_is_not_resp2_fails_its_command_and_the_next_one_reconnects() {
        use tokio::io::AsyncReadExt as _;
        // A server that answers its first connection's command with what
        // is not RESP, and later connections' with PONG.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            for answer in [&b"?what\r\n"[..], b"+PONG\r\n"] {
                let (mut stream, _) = listener.accept().await.unwrap();
                let mut command = [0u8; 64];
                let _ = stream.read(&mut command).await;
                stream.write_all(answer).await.unwrap();
                // Kept open: the client, not the server, must end it.
                tokio::spawn(async move {
                    let _ = stream.read(&mut command).await;
                });
            }
        });
        let lean = lean(&format!("redis://{addr}"));
        let e = lean.request(&cmd("PING", &[])).await.unwrap_err();
        assert!(e.is_io_error() && e.to_string().contains("not RESP2"), "{e}");
        assert_eq!(
            lean.request(&cmd("PING", &[])).await.unwrap(),
            Value::SimpleString("PONG".into()),
            "a new connection, not the one that sent garbage"
        );
    }

    #[tokio::test]
    async fn no_redis_is_an_io_error_at_once() {
        let lean = lean(&format!("redis://127.0.0.1:{}", hookgate_testkit::free_port()));
        let started = Instant::now();
        let e = lean.request(&cmd("PING", &[])).await.unwrap_err();
        assert!(e.is_io_error() && e.is_connection_refusal(), "{e}");
        assert!(started.elapsed() < Duration::from_secs(1));
        // Right after, commands fail without trying again; a moment later
        // they try again.
        let e = lean.request(&cmd("PING", &[])).await.unwrap_err();
        assert!(
            e.is_connection_refusal() && e.to_string().contains("a moment ago"),
            "{e}"
        );
        tokio::time::sleep(AFTER_A_FAILED_CONNECT).await;
        let e = lean.request(&cmd("PING", &[])).await.unwrap_err();
        assert!(
            e.is_connection_refusal() && !e.to_string().contains("a moment ago"),
            "{e}"
        );
    }
}
