//! What a guest says: the `host.log` import and captured stdout/stderr,
//! forwarded to `tracing` (target `hookgate::plugin::guest`) with bounds.
//!
//! Bounds: a log message is cut at [`MAX_LINE`] bytes; a call keeps at most
//! [`MAX_CAPTURE`] bytes of each of stdout and stderr (the rest is counted and
//! discarded, never an error for the guest); and each plugin may emit at most
//! [`LINES_PER_SECOND`] lines per second across all its calls, the rest being
//! summarised as a count. Guest `error` logs are emitted at WARN: a plugin's
//! complaint is not, by itself, something an operator must act on.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

use tracing::Level;

/// The `tracing` target of everything a guest says.
pub const TARGET: &str = "hookgate::plugin::guest";
/// Longest log line kept, in bytes.
pub const MAX_LINE: usize = 1024;
/// Bytes of stdout (and of stderr) kept per call.
pub const MAX_CAPTURE: usize = 8 * 1024;
/// Lines per second per plugin that reach the log.
pub const LINES_PER_SECOND: u32 = 50;

/// Per-plugin rate limit on guest log lines (a fixed one-second window).
#[derive(Debug)]
pub struct LogBudget {
    window: Mutex<Window>,
}

#[derive(Debug)]
struct Window {
    start: Instant,
    used: u32,
    suppressed: u64,
}

impl Default for LogBudget {
    fn default() -> Self {
        LogBudget {
            window: Mutex::new(Window {
                start: Instant::now(),
                used: 0,
                suppressed: 0,
            }),
        }
    }
}

impl LogBudget {
    /// Takes one line from the budget; reports lines suppressed in the
    /// previous window when a new one opens.
    fn take(&self, plugin: &str) -> bool {
        let Ok(mut w) = self.window.lock() else {
            return false;
        };
        if w.start.elapsed().as_secs() >= 1 {
            if w.suppressed > 0 {
                tracing::debug!(target: TARGET, plugin, suppressed = w.suppressed, "guest log lines suppressed");
            }
            *w = Window {
                start: Instant::now(),
                used: 0,
                suppressed: 0,
            };
        }
        if w.used < LINES_PER_SECOND {
            w.used += 1;
            true
        } else {
            w.suppressed += 1;
            false
        }
    }
}

/// One call's view of the guest log: emits lines within budget and keeps the
/// last error-level message, which explains a trap that follows (the SDK's
/// panic hook logs the panic message at error level).
#[derive(Debug)]
pub(crate) struct GuestLog {
    plugin: Arc<str>,
    budget: Arc<LogBudget>,
    pub(crate) last_error: Option<String>,
}

impl GuestLog {
    pub(crate) fn new(plugin: Arc<str>, budget: Arc<LogBudget>) -> Self {
        GuestLog {
            plugin,
            budget,
            last_error: None,
        }
    }

    pub(crate) fn record(&mut self, level: Level, message: &str) {
        let message = truncate(message, MAX_LINE);
        if level == Level::ERROR {
            self.last_error = Some(message.to_owned());
        }
        if !self.budget.take(&self.plugin) {
            return;
        }
        let plugin = &*self.plugin;
        // A guest's errors are its own: the gateway logs them as warnings.
        match level {
            Level::TRACE => tracing::trace!(target: TARGET, plugin, "{message}"),
            Level::DEBUG => tracing::debug!(target: TARGET, plugin, "{message}"),
            Level::INFO => tracing::info!(target: TARGET, plugin, "{message}"),
            _ => tracing::warn!(target: TARGET, plugin, "{message}"),
        }
    }

    /// Emits captured stdout/stderr at debug level, one event per line.
    pub(crate) fn flush_streams(&mut self, stdout: &CapturedOutput, stderr: &CapturedOutput) {
        for (stream, out) in [("stdout", stdout), ("stderr", stderr)] {
            let (bytes, dropped) = out.take();
            if bytes.is_empty() && dropped == 0 {
                continue;
            }
            let text = String::from_utf8_lossy(&bytes);
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                if !self.budget.take(&self.plugin) {
                    break;
                }
                tracing::debug!(target: TARGET, plugin = &*self.plugin, stream, "{}", truncate(line, MAX_LINE));
            }
            if dropped > 0 {
                tracing::debug!(target: TARGET, plugin = &*self.plugin, stream, dropped, "guest output over the per-call capture limit was discarded");
            }
        }
    }
}

/// Cuts `s` to at most `max` bytes on a char boundary.
pub(crate) fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// A WASI stdout/stderr that keeps the first [`MAX_CAPTURE`] bytes and
/// silently counts the rest. Never blocks, never fails a write.
#[derive(Clone, Debug, Default)]
pub(crate) struct CapturedOutput {
    inner: Arc<Mutex<Capture>>,
}

#[derive(Debug, Default)]
struct Capture {
    kept: Vec<u8>,
    dropped: u64,
}

impl CapturedOutput {
    fn push(&self, bytes: &[u8]) {
        let Ok(mut c) = self.inner.lock() else { return };
        let room = MAX_CAPTURE.saturating_sub(c.kept.len());
        let keep = bytes.len().min(room);
        c.kept.extend_from_slice(&bytes[..keep]);
        c.dropped += (bytes.len() - keep) as u64;
    }

    /// The captured bytes and the count of discarded ones, emptying the buffer.
    pub(crate) fn take(&self) -> (Vec<u8>, u64) {
        let Ok(mut c) = self.inner.lock() else {
            return (Vec::new(), 0);
        };
        let c = std::mem::take(&mut *c);
        (c.kept, c.dropped)
    }

    /// The last non-empty line captured so far (for trap messages).
    pub(crate) fn last_line(&self) -> Option<String> {
        let c = self.inner.lock().ok()?;
        let text = String::from_utf8_lossy(&c.kept);
        text.lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .map(|l| truncate(l, MAX_LINE).to_owned())
    }
}

impl IsTerminal for CapturedOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CapturedOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[async_trait::async_trait]
impl Pollable for CapturedOutput {
    async fn ready(&mut self) {}
}

impl OutputStream for CapturedOutput {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 * 1024)
    }
}

impl AsyncWrite for CapturedOutput {
    fn poll_write(self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        self.push(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capture_keeps_a_bounded_prefix_and_counts_the_rest() {
        let out = CapturedOutput::default();
        out.push(&vec![b'a'; MAX_CAPTURE - 1]);
        out.push(b"xyz\n");
        let (kept, dropped) = out.take();
        assert_eq!(kept.len(), MAX_CAPTURE);
        assert_eq!(dropped, 3);
        assert_eq!(out.take(), (Vec::new(), 0));
    }

    #[test]
    fn truncate_respects_char_boundaries() {
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("abc", 10), "abc");
    }

    #[test]
    fn budget_allows_a_bounded_number_of_lines_per_window() {
        let b = LogBudget::default();
        let allowed = (0..LINES_PER_SECOND * 2).filter(|_| b.take("p")).count();
        assert_eq!(allowed, LINES_PER_SECOND as usize);
    }
}
