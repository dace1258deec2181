//! Write [hookgate](https://example.invalid/hookgate) webhook plugins in Rust.
//!
//! A plugin is a WebAssembly component that sees each event on its way to a
//! webhook and either forwards it (possibly changed) or drops it. This crate
//! wraps the generated bindings for the `hookgate:plugin@0.1.0` world
//! (`wit/plugin.wit`, the ABI's single source of truth) in a small API:
//! implement [`Plugin`] and call [`export_plugin!`].
//!
//! # A complete plugin
//!
//! `Cargo.toml`:
//!
//! ```toml
//! [package]
//! name = "only-done"
//! version = "0.1.0"
//! edition = "2024"
//!
//! [lib]
//! crate-type = ["cdylib"]
//!
//! [dependencies]
//! hookgate-plugin-sdk = { path = "../../plugin-sdk" }
//! serde = { version = "1", features = ["derive"] }
//!
//! [profile.release]
//! opt-level = "s"
//! lto = true
//! strip = true
//! ```
//!
//! `src/lib.rs`:
//!
//! ```no_run
//! use hookgate_plugin_sdk::{export_plugin, log, Config, Error, Event, Plugin, Verdict};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Deserialize, Serialize)]
//! struct Task {
//!     title: String,
//!     status: String,
//! }
//!
//! struct OnlyDone;
//!
//! impl Plugin for OnlyDone {
//!     fn handle(event: Event, config: &Config) -> Result<Verdict, Error> {
//!         let wanted = config.get("status").unwrap_or("done");
//!         let mut task: Task = event.json()?;
//!         if task.status != wanted {
//!             return Ok(Verdict::drop(format!("task status is not {wanted}")));
//!         }
//!         log::debug(format!("forwarding {} ({})", event.id, event.event_type));
//!         task.title = task.title.to_uppercase();
//!         Ok(Verdict::forward_json(&task)?.with_header("x-task-status", &task.status))
//!     }
//!
//!     fn validate_config(config: &Config) -> Result<(), String> {
//!         config.check_keys(&["status"])?;
//!         match config.get("status") {
//!             Some("") => Err("`status` must not be empty".into()),
//!             _ => Ok(()),
//!         }
//!     }
//! }
//!
//! export_plugin!(OnlyDone);
//! ```
//!
//! Build it (once: `rustup target add wasm32-wasip2`):
//!
//! ```text
//! cargo build --target wasm32-wasip2 --release
//! hookgate plugin run target/wasm32-wasip2/release/only_done.wasm --event event.json --set status=done
//! ```
//!
//! # What a plugin can do
//!
//! * Read the event: [`Event`] (id, type, webhook id, headers, body), with
//!   [`Event::json`] to deserialize the body.
//! * Read its configuration: [`Config`], the string map from the webhook's
//!   `[[webhooks.plugins]] config` table.
//! * Answer with a [`Verdict`]: forward (unchanged, new body, new headers) or
//!   drop with a reason; or return an [`Error`] to fail the delivery attempt
//!   (the webhook's `on_error` then retries or skips the plugin).
//! * Log through the gateway: [`log`]. A panic is logged with its message and
//!   fails the attempt.
//!
//! It runs with no capabilities: no files, no network, no environment, no
//! clock you should rely on, and within a time budget (default 100 ms) and a
//! memory cap (default 32 MiB) per call. The gateway reuses instances
//! between calls (a few warm ones per plugin version, replaced after a
//! failure, after many calls, or on reload), so globals and statics *may*
//! survive from one event to the next, and a call may just as well run on a
//! fresh instance: rely on neither. Keep state out of globals, or treat it
//! as a cache that can vanish at any time.

// Lets the generated bindings name this crate by path from inside it, too.
extern crate self as hookgate_plugin_sdk;

mod config;
mod event;
pub mod log;
pub mod pointer;
mod verdict;

pub use config::Config;
pub use event::Event;
pub use verdict::{Error, Headers, Verdict};

/// Re-exported so plugins can build JSON without naming another dependency.
pub use serde_json;

/// The raw bindings generated from `wit/plugin.wit`. Most plugins never need
/// them; they are what [`export_plugin!`] wires to.
#[allow(unsafe_code, missing_docs, clippy::all)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "wit",
        world: "plugin",
        pub_export_macro: true,
        export_macro_name: "__export_plugin_world",
        default_bindings_module: "::hookgate_plugin_sdk::bindings",
        runtime_path: "::hookgate_plugin_sdk::__private::wit_bindgen::rt",
    });
}

/// A hookgate plugin. Both functions are associated functions: there is no
/// `self` to keep state in, because a call may run on a fresh instance or on
/// one that served earlier calls (see the crate docs).
pub trait Plugin {
    /// Decides what happens to one event on its way to one webhook.
    fn handle(event: Event, config: &Config) -> Result<Verdict, Error>;

    /// Checks the configuration when the gateway loads the plugin for a
    /// webhook. Return a message saying what is wrong; the default accepts
    /// anything.
    fn validate_config(config: &Config) -> Result<(), String> {
        let _ = config;
        Ok(())
    }
}

/// Exports a [`Plugin`] implementation as the component's `handle` and
/// `validate-config` functions. Use it once per plugin crate.
///
/// ```no_run
/// use hookgate_plugin_sdk::{export_plugin, Config, Error, Event, Plugin, Verdict};
///
/// struct PassThrough;
///
/// impl Plugin for PassThrough {
///     fn handle(event: Event, _config: &Config) -> Result<Verdict, Error> {
///         Ok(event.forward())
///     }
/// }
///
/// export_plugin!(PassThrough);
/// ```
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        const _: () = {
            struct __HookgatePluginExport;

            impl $crate::bindings::Guest for __HookgatePluginExport {
                fn handle(
                    event: $crate::bindings::Event,
                    config: $crate::bindings::Config,
                ) -> ::core::result::Result<$crate::bindings::Verdict, ::std::string::String> {
                    $crate::__private::handle::<$plugin>(event, config)
                }

                fn validate_config(
                    config: $crate::bindings::Config,
                ) -> ::core::result::Result<(), ::std::string::String> {
                    $crate::__private::validate_config::<$plugin>(config)
                }
            }

    $crate::bindings::__export_plugin_world!(__HookgatePluginExport with_types_in $crate::bindings);
        };
    };
}

#[doc(hidden)]
pub mod __private {
    pub use wit_bindgen;

    use crate::bindings;
    use crate::{Config, Event, Plugin};

    pub fn handle<P: Plugin>(event: bindings::Event, config: bindings::Config) -> Result<bindings::Verdict, String> {
        crate::log::install_panic_hook();
        let config = Config::new(config);
        let headers = event.headers.clone();
        match P::handle(Event::from_wit(event), &config) {
            Ok(verdict) => Ok(verdict.into_wit(headers)),
            Err(e) => Err(e.to_string()),
        }
    }

    pub fn validate_config<P: Plugin>(config: bindings::Config) -> Result<(), String> {
        crate::log::install_panic_hook();
        P::validate_config(&Config::new(config))
    }
}
