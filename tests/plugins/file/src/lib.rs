//! Tries to read, create and list files, and forwards a JSON report of what
//! happened: `{"read_etc_passwd": "...", ...}` where each value is `ok ...`
//! or `error: ...`.

#![forbid(unsafe_code)]

use hookgate_plugin_sdk::{Config, Error, Event, Plugin, Verdict, export_plugin};
use serde_json::json;

struct Files;

fn outcome<T: std::fmt::Debug>(r: std::io::Result<T>) -> String {
    match r {
        Ok(v) => format!("ok {v:?}"),
        Err(e) => format!("error: {e}"),
    }
}

impl Plugin for Files {
    fn handle(_event: Event, _config: &Config) -> Result<Verdict, Error> {
        let report = json!({
            "read_etc_passwd": outcome(std::fs::read("/etc/passwd").map(|b| b.len())),
            "read_relative": outcome(std::fs::read("Cargo.toml").map(|b| b.len())),
            "create_tmp": outcome(std::fs::write("/tmp/hookgate-hostile-plugin", b"x")),
            "list_root": outcome(std::fs::read_dir("/").map(|d| d.count())),
            "list_cwd": outcome(std::fs::read_dir(".").map(|d| d.count())),
        });
        Verdict::forward_json(&report)
    }
}

export_plugin!(Files);
