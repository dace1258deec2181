//! JavaScript and Python plugins built from source, once per test process
//! and only again when their sources change.
//!
//! [`built_script_plugins`] builds, with the toolchains of
//! `plugins/template-js` (componentize-js from its `node_modules`, installed
//! with `npm ci` first if missing) and `plugins/template-py` (componentize-py
//! in the `.venv` its `build.sh` makes):
//!
//! * the templates and the examples (`pagerduty-js`, `mask-py`), in place
//!   (`<folder>/dist/plugin.wasm`, as their authors would);
//! * the hostile guests `tests/plugins-js/hostile.js` and
//!   `tests/plugins-py/hostile.py`, each as the `plugin` module of a folder
//!   assembled under `target/script-plugins/` with the template's runtime
//!   files, the way `hookgate plugin new` lays a plugin out.
//!
//! A build takes 5–20 s, so each output carries a stamp (a hash of its
//! inputs: sources, runtime, WIT, lock file, build script); a later test
//! process with the same inputs reuses the component. Test binaries run one
//! after another under `cargo test`, so stamps need no locking; outputs are
//! written by the build scripts and only then stamped.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::wasm::repo_root;

/// Paths of the built JavaScript and Python components.
#[derive(Debug)]
pub struct ScriptPlugins {
    /// `plugins/template-js`: forwards unchanged.
    pub template_js: PathBuf,
    /// `plugins/pagerduty-js`: PagerDuty Events API v2 envelope.
    pub pagerduty_js: PathBuf,
    /// `tests/plugins-js/hostile.js`: misbehaves per config `mode`.
    pub hostile_js: PathBuf,
    /// `plugins/template-py`: forwards unchanged.
    pub template_py: PathBuf,
    /// `plugins/mask-py`: masks card numbers and emails.
    pub mask_py: PathBuf,
    /// `tests/plugins-py/hostile.py`: misbehaves per config `mode`.
    pub hostile_py: PathBuf,
}

/// Builds (or reuses) every JavaScript and Python plugin. Panics with the
/// build output, and what to install, if a toolchain is missing or a build
/// fails.
pub fn built_script_plugins() -> &'static ScriptPlugins {
    static BUILT: OnceLock<ScriptPlugins> = OnceLock::new();
    BUILT.get_or_init(|| {
        let root = repo_root();
        let plugins = root.join("plugins");
        let js = plugins.join("template-js");
        let py = plugins.join("template-py");
        let staging = root.join("target").join("script-plugins");
        ensure_node_modules(&js);

        let js_runtime = ["src/index.js", "src/hookgate.js"];
        let py_runtime = ["src/main.py", "src/hookgate.py"];
        let hostile_js = assemble(
            &staging.join("hostile-js"),
            &js,
            &js_runtime,
            &root.join("tests/plugins-js/hostile.js"),
            "plugin.js",
        );
        let hostile_py = assemble(
            &staging.join("hostile-py"),
            &py,
            &py_runtime,
            &root.join("tests/plugins-py/hostile.py"),
            "plugin.py",
        );
        let js_tool = [
            js.join("build.mjs"),
            js.join("package-lock.json"),
            js.join("wit/plugin.wit"),
        ];
        let py_tool = [
            py.join("build.sh"),
            py.join("requirements.txt"),
            py.join("wit/plugin.wit"),
        ];
        let build_js = |dir: &Path| {
            build(dir, &js_tool, || {
                let mut cmd = Command::new("node");
                cmd.arg(js.join("build.mjs")).arg(dir).current_dir(&js);
                cmd
            })
        };
        let build_py = |dir: &Path| {
            build(dir, &py_tool, || {
                let mut cmd = Command::new(py.join("build.sh"));
                cmd.arg(dir).current_dir(&py);
                cmd
            })
        };
        ScriptPlugins {
            template_js: build_js(&js),
            pagerduty_js: build_js(&plugins.join("pagerduty-js")),
            hostile_js: build_js(&hostile_js),
            template_py: build_py(&py),
            mask_py: build_py(&plugins.join("mask-py")),
            hostile_py: build_py(&hostile_py),
        }
    })
}

/// `npm ci` in the JavaScript template unless its `node_modules` matches
/// its lock file already.
fn ensure_node_modules(js: &Path) {
    let installed = js.join("node_modules/.package-lock.json");
    let lock = js.join("package-lock.json");
    let fresh = match (std::fs::metadata(&installed), std::fs::metadata(&lock)) {
        (Ok(i), Ok(l)) => i.modified().ok() >= l.modified().ok(),
        _ => false,
    };
    if fresh {
        return;
    }
    let out = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(js)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run npm ({e}); install Node.js 18+ and npm (Debian: apt-get install nodejs npm)")
        });
    assert!(
        out.status.success(),
        "npm ci in {} failed:\n{}",
        js.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Lays out a plugin folder at `dir`: the template's runtime files and
/// `plugin` as `src/<module>`. Rewrites only files whose content changed,
/// so unchanged inputs keep their stamp.
fn assemble(dir: &Path, template: &Path, runtime: &[&str], plugin: &Path, module: &str) -> PathBuf {
    let mut files: Vec<(PathBuf, PathBuf)> = runtime.iter().map(|f| (template.join(f), dir.join(f))).collect();
    files.push((plugin.to_owned(), dir.join("src").join(module)));
    for (from, to) in files {
        let content = std::fs::read(&from).unwrap_or_else(|e| panic!("{}: {e}", from.display()));
        if std::fs::read(&to).ok().as_deref() != Some(&content[..]) {
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::write(&to, content).unwrap_or_else(|e| panic!("{}: {e}", to.display()));
        }
    }
    dir.to_owned()
}

/// Runs `command` unless `dir/dist/plugin.wasm` was built from the same
/// inputs (`dir/src/**` plus `tool`), then stamps it.
fn build(dir: &Path, tool: &[PathBuf], command: impl FnOnce() -> Command) -> PathBuf {
    let wasm = dir.join("dist").join("plugin.wasm");
    let stamp = dir.join("dist").join("plugin.wasm.inputs");
    let mut hasher = DefaultHasher::new();
    let mut inputs = files_under(&dir.join("src"));
    inputs.extend(tool.iter().cloned());
    for path in &inputs {
        path.strip_prefix(dir).unwrap_or(path).hash(&mut hasher);
        std::fs::read(path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .hash(&mut hasher);
    }
    let key = format!("{:016x}\n", hasher.finish());
    if wasm.is_file() && std::fs::read_to_string(&stamp).ok().as_deref() == Some(&key) {
        return wasm;
    }
    let _ = std::fs::remove_file(&stamp);
    let mut cmd = command();
    let shown = format!("{cmd:?}");
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {shown}: {e}; install Node.js 18+ (npm) and Python 3.10+ (venv)"));
    assert!(
        out.status.success(),
        "building {} failed ({shown}):\n{}\n{}",
        dir.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(wasm.is_file(), "{} was not built", wasm.display());
    std::fs::write(&stamp, key).unwrap();
    wasm
}

/// Every file under `dir`, sorted, skipping caches.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.file_name().is_some_and(|n| n == "__pycache__") {
                continue;
            }
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}
