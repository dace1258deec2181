//! Produces too much: config `body_bytes` (a body of that many bytes),
//! `headers` (that many headers), `log_lines` (that many log calls and as
//! many stdout/stderr lines before forwarding unchanged), or `error_bytes`
//! (a guest error message of that size).

#![forbid(unsafe_code)]

use hookgate_plugin_sdk::{Config, Error, Event, Plugin, Verdict, export_plugin, log};

struct Flood;

impl Plugin for Flood {
    fn handle(event: Event, config: &Config) -> Result<Verdict, Error> {
        if let Some(n) = config.parse::<usize>("log_lines")? {
            for i in 0..n {
                log::info(format!("log line {i}"));
                println!("stdout line {i}");
                eprintln!("stderr line {i}");
            }
        }
        if let Some(n) = config.parse::<usize>("error_bytes")? {
            return Err(Error::msg("e".repeat(n)));
        }
        let mut verdict = match config.parse::<usize>("body_bytes")? {
            Some(n) => Verdict::forward(vec![b'x'; n]),
            None => event.forward(),
        };
        if let Some(n) = config.parse::<usize>("headers")? {
            verdict = verdict.with_headers((0..n).map(|i| (format!("x-h{i}"), "v".repeat(64))).collect());
        }
        if let Some(name) = config.get("header_name") {
            verdict = verdict.with_header(name, "v");
        }
        Ok(verdict)
    }
}

export_plugin!(Flood);
