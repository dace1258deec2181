//! WebAssembly plugins built from source, once per test process.
//!
//! [`built_plugins`] runs `cargo build --release --target wasm32-wasip2` in
//! the example (`plugins/`) and hostile (`tests/plugins/`) plugin workspaces
//! with `CARGO_TARGET_DIR=<repo>/target/wasm`, the first time it is called in
//! a process, and returns the paths of the `.wasm` files. Test binaries
//! running at the same time are serialised by cargo's own lock on that
//! target folder: the second one waits, then finds everything up to date.
//! A missing `wasm32-wasip2` target fails with the command that installs it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

const TARGET: &str = "wasm32-wasip2";

/// Paths of every built plugin.
#[derive(Debug)]
pub struct PluginPaths {
    /// `plugins/template`: forwards unchanged.
    pub template: PathBuf,
    pub event_filter: PathBuf,
    pub redact: PathBuf,
    pub cloudevents: PathBuf,
    pub slack: PathBuf,
    /// `tests/plugins/loop`: spins forever.
    pub hostile_loop: PathBuf,
    /// `tests/plugins/memory`: allocates until refused.
    pub hostile_memory: PathBuf,
    /// `tests/plugins/panic`: panics.
    pub hostile_panic: PathBuf,
    /// `tests/plugins/output`: huge bodies, many headers, log floods.
    pub hostile_output: PathBuf,
    /// `tests/plugins/file`: tries the filesystem, reports.
    pub hostile_file: PathBuf,
    /// `tests/plugins/network`: tries sockets, DNS, env, args, reports.
    pub hostile_network: PathBuf,
    /// `tests/plugins/sleep`: sleeps 10 s inside a WASI call.
    pub hostile_sleep: PathBuf,
    /// `tests/plugins/counter`: counts its calls in a global (`x-calls`
    /// header), misbehaves on request.
    pub hostile_counter: PathBuf,
}

/// The repository root (the folder holding `plugins/` and `tests/`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// Builds every plugin once per process and returns their paths. Panics with
/// the build output if a build fails.
pub fn built_plugins() -> &'static PluginPaths {
    static BUILT: OnceLock<PluginPaths> = OnceLock::new();
    BUILT.get_or_init(|| {
        let root = repo_root();
        let target_dir = root.join("target").join("wasm");
        check_target_installed();
        for workspace in ["plugins", "tests/plugins"] {
            build(&root.join(workspace), &target_dir);
        }
        let out = target_dir.join(TARGET).join("release");
        let wasm = |name: &str| {
            let path = out.join(format!("{name}.wasm"));
            assert!(path.is_file(), "{} was not built", path.display());
            path
        };
        PluginPaths {
            template: wasm("plugin_template"),
            event_filter: wasm("event_filter"),
            redact: wasm("redact"),
            cloudevents: wasm("cloudevents"),
            slack: wasm("slack"),
            hostile_loop: wasm("hostile_loop"),
            hostile_memory: wasm("hostile_memory"),
            hostile_panic: wasm("hostile_panic"),
            hostile_output: wasm("hostile_output"),
            hostile_file: wasm("hostile_file"),
            hostile_network: wasm("hostile_network"),
            hostile_sleep: wasm("hostile_sleep"),
            hostile_counter: wasm("hostile_counter"),
        }
    })
}

fn check_target_installed() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let sysroot = Command::new(&rustc).args(["--print", "sysroot"]).output();
    let installed = match sysroot {
        Ok(out) if out.status.success() => {
            let sysroot = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            Path::new(&sysroot).join("lib/rustlib").join(TARGET).is_dir()
        }
        _ => panic!("cannot run `{rustc} --print sysroot`; is Rust installed?"),
    };
    assert!(
        installed,
        "the {TARGET} Rust target is not installed; run `rustup target add {TARGET}` (plugins are built for it)"
    );
}

fn build(workspace: &Path, target_dir: &Path) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["build", "--release", "--target", TARGET, "--workspace"])
        .current_dir(workspace)
        .env("CARGO_TARGET_DIR", target_dir)
        // Host flags (e.g. -C target-cpu=native) make no sense for wasm.
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .output()
        .unwrap_or_else(|e| panic!("cannot run cargo to build {}: {e}", workspace.display()));
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let hint = if stderr.contains("target may not be installed") || stderr.contains("can't find crate for `core`") {
            format!("\nhint: run `rustup target add {TARGET}`")
        } else {
            String::new()
        };
        panic!(
            "building the plugins in {} failed:\n{stderr}{hint}",
            workspace.display()
        );
    }
}
