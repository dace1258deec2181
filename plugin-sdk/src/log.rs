//! Logging through the gateway: each message becomes a `tracing` event tagged
//! with the plugin's name (target `hookgate::plugin::guest`). The host cuts
//! long messages and rate-limits chatty plugins; `error` is logged as a
//! warning, and the last error-level message explains a trap that follows.
//!
//! A panic is logged at error level with its message and location (the SDK
//! installs a panic hook), then fails the call.

use std::sync::Once;

pub use crate::bindings::hookgate::plugin::host::Level;

/// Logs `message` at `level`.
pub fn log(level: Level, message: impl AsRef<str>) {
    crate::bindings::hookgate::plugin::host::log(level, message.as_ref());
}

/// Logs at trace level.
pub fn trace(message: impl AsRef<str>) {
    log(Level::Trace, message);
}

/// Logs at debug level.
pub fn debug(message: impl AsRef<str>) {
    log(Level::Debug, message);
}

/// Logs at info level.
pub fn info(message: impl AsRef<str>) {
    log(Level::Info, message);
}

/// Logs at warn level.
pub fn warn(message: impl AsRef<str>) {
    log(Level::Warn, message);
}

/// Logs at error level.
pub fn error(message: impl AsRef<str>) {
    log(Level::Error, message);
}

/// Routes panic messages to the host log (stderr is not a place anyone reads).
pub(crate) fn install_panic_hook() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let message = info.payload_as_str().unwrap_or("(no message)");
            match info.location() {
                Some(at) => error(format!("plugin panicked at {at}: {message}")),
                None => error(format!("plugin panicked: {message}")),
            }
        }));
    });
}
