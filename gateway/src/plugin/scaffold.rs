//! `hookgate plugin new NAME --lang rust|js|python` (docs/plugins.md): writes a
//! plugin folder that builds anywhere, from templates carried inside the
//! binary, and says how to build and try it.
//!
//! The files are the repository's own templates (`plugins/template`,
//! `plugins/template-js`, `plugins/template-py`) and the plugin ABI
//! (`plugin-sdk/wit/plugin.wit`), embedded at compile time, so a scaffolded
//! plugin matches the gateway that wrote it. Nothing here is fetched.
//!
//! * **Rust**: the crate and a `Cargo.lock` with the dependency versions the
//!   repository builds with, plus the SDK's sources in `hookgate-plugin-sdk/`
//!   (it is not published to a registry, and a path into a checkout would
//!   break once the folder moves), a one-crate workspace of its own and the
//!   size-saving release profile of the repository's plugin workspace, so
//!   the component is as small outside the repository as inside it.
//! * **JavaScript**: `package.json` and `package-lock.json` with the exact
//!   componentize-js version, the build script, the runtime glue and
//!   `src/plugin.js`.
//! * **Python**: `build.sh` (which makes its own virtualenv with the pinned
//!   componentize-py), the glue modules and `src/plugin.py`.
//!
//! Every folder gets the WIT file, a README with the build, run and config
//! commands for that folder, and an `event.json` to try it on.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

mod readme;

/// The language of a new plugin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lang {
    Rust,
    JavaScript,
    Python,
}

/// Why a plugin folder could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    #[error(
        "invalid plugin name {0:?}: use lowercase letters, digits, '-' and '_' (starting with a letter), at most 64 characters"
    )]
    Name(String),
    #[error("{} already exists; choose another name or remove it", .0.display())]
    Exists(PathBuf),
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What was written, for the message printed at the end.
#[derive(Debug)]
pub struct Scaffolded {
    /// The new folder.
    pub dir: PathBuf,
    /// The command that builds it, run from the folder's parent.
    pub build: String,
    /// Where the build leaves the component, relative to the folder.
    pub wasm: String,
}

const WIT: &str = include_str!("../../../plugin-sdk/wit/plugin.wit");

const EVENT_JSON: &str = include_str!("../../../plugins/template-js/event.json");

/// The Rust SDK, written next to a new Rust plugin.
const SDK_FILES: &[(&str, &str)] = &[
    ("README.md", include_str!("../../../plugin-sdk/README.md")),
    ("src/config.rs", include_str!("../../../plugin-sdk/src/config.rs")),
    ("src/event.rs", include_str!("../../../plugin-sdk/src/event.rs")),
    ("src/lib.rs", include_str!("../../../plugin-sdk/src/lib.rs")),
    ("src/log.rs", include_str!("../../../plugin-sdk/src/log.rs")),
    ("src/pointer.rs", include_str!("../../../plugin-sdk/src/pointer.rs")),
    ("src/verdict.rs", include_str!("../../../plugin-sdk/src/verdict.rs")),
];
const SDK_MANIFEST: &str = include_str!("../../../plugin-sdk/Cargo.toml");
const RUST_LIB: &str = include_str!("../../../plugins/template/src/lib.rs");
/// The example workspace's lock file: the versions of the SDK's
/// dependencies the repository builds and tests with. Cargo drops the
/// entries a new plugin does not use and adds the plugin itself.
const RUST_LOCK: &str = include_str!("../../../plugins/Cargo.lock");

const JS_FILES: &[(&str, &str)] = &[
    ("build.mjs", include_str!("../../../plugins/template-js/build.mjs")),
    (
        "src/index.js",
        include_str!("../../../plugins/template-js/src/index.js"),
    ),
    (
        "src/hookgate.js",
        include_str!("../../../plugins/template-js/src/hookgate.js"),
    ),
    (
        "src/plugin.js",
        include_str!("../../../plugins/template-js/src/plugin.js"),
    ),
    (".gitignore", include_str!("../../../plugins/template-js/.gitignore")),
];
const JS_PACKAGE: &str = include_str!("../../../plugins/template-js/package.json");
const JS_LOCK: &str = include_str!("../../../plugins/template-js/package-lock.json");
const JS_TEMPLATE_NAME: &str = "hookgate-plugin-template-js";

const PY_FILES: &[(&str, &str)] = &[
    (
        "requirements.txt",
        include_str!("../../../plugins/template-py/requirements.txt"),
    ),
    ("src/main.py", include_str!("../../../plugins/template-py/src/main.py")),
    (
        "src/hookgate.py",
        include_str!("../../../plugins/template-py/src/hookgate.py"),
    ),
    (
        "src/plugin.py",
        include_str!("../../../plugins/template-py/src/plugin.py"),
    ),
    (".gitignore", include_str!("../../../plugins/template-py/.gitignore")),
];
const PY_BUILD: &str = include_str!("../../../plugins/template-py/build.sh");

/// The release profile of the repository's plugin workspace: a pass-through
/// plugin is ~50 KB with it and four times that without.
const RELEASE_PROFILE: &str = "[profile.release]
opt-level = 3
lto = true
codegen-units = 1
strip = true
panic = \"abort\"
";

/// Writes a new plugin folder at `dir` (its last component is the plugin's
/// name). Refuses to touch an existing path.
pub fn scaffold(dir: &Path, lang: Lang) -> Result<Scaffolded, ScaffoldError> {
    let name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .filter(|n| valid_name(n))
        .ok_or_else(|| ScaffoldError::Name(dir.display().to_string()))?;
    if dir.symlink_metadata().is_ok() {
        return Err(ScaffoldError::Exists(dir.to_owned()));
    }
    let files = match lang {
        Lang::Rust => rust_files(name),
        Lang::JavaScript => js_files(name),
        Lang::Python => python_files(name),
    };
    write_all(dir, &files)?;
    let shown = dir.display();
    Ok(match lang {
        Lang::Rust => Scaffolded {
            dir: dir.to_owned(),
            build: format!("cd {shown} && cargo build --target wasm32-wasip2 --release"),
            wasm: rust_wasm_path(name),
        },
        Lang::JavaScript => Scaffolded {
            dir: dir.to_owned(),
            build: format!("cd {shown} && npm install && npm run build"),
            wasm: "dist/plugin.wasm".into(),
        },
        Lang::Python => Scaffolded {
            dir: dir.to_owned(),
            build: format!("cd {shown} && ./build.sh"),
            wasm: "dist/plugin.wasm".into(),
        },
    })
}

/// `[a-z][a-z0-9_-]{0,63}`: a valid Cargo package and npm package name.
fn valid_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z'))
        && name.len() <= 64
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// Where `cargo build --target wasm32-wasip2 --release` leaves the plugin.
fn rust_wasm_path(name: &str) -> String {
    format!("target/wasm32-wasip2/release/{}.wasm", name.replace('-', "_"))
}

/// One file to write: path inside the folder, content, executable or not.
type File = (String, String, bool);

fn file(path: &str, content: impl Into<String>) -> File {
    (path.to_owned(), content.into(), false)
}

fn rust_files(name: &str) -> Vec<File> {
    let manifest = format!(
        "[package]
name = \"{name}\"
version = \"0.1.0\"
edition = \"2024\"
publish = false

[lib]
crate-type = [\"cdylib\"]

[dependencies]
# The SDK's sources, written by `hookgate plugin new` (the ABI is wit/ inside it).
hookgate-plugin-sdk = {{ path = \"hookgate-plugin-sdk\" }}

# A workspace of its own: builds the same wherever this folder lives.
[workspace]

# Small, fast components: without this a pass-through plugin is ~4x larger.
{RELEASE_PROFILE}"
    );
    let mut files = vec![
        file("Cargo.toml", manifest),
        file("Cargo.lock", RUST_LOCK),
        file("src/lib.rs", RUST_LIB),
        file(".gitignore", "/target\n"),
        file("event.json", EVENT_JSON),
        file("README.md", readme::rust(name, &rust_wasm_path(name))),
        file("hookgate-plugin-sdk/Cargo.toml", sdk_manifest()),
        file("hookgate-plugin-sdk/wit/plugin.wit", WIT),
    ];
    for (path, content) in SDK_FILES {
        files.push(file(&format!("hookgate-plugin-sdk/{path}"), *content));
    }
    files
}

/// The SDK's manifest without its `[workspace]` table: inside the plugin's
/// folder it is a member of the plugin's workspace.
fn sdk_manifest() -> String {
    SDK_MANIFEST
        .lines()
        .filter(|line| line.trim() != "[workspace]")
        .map(|line| format!("{line}\n"))
        .collect()
}

fn js_files(name: &str) -> Vec<File> {
    let package = JS_PACKAGE.replace(JS_TEMPLATE_NAME, name).replace(
        "A hookgate plugin in JavaScript that forwards every event unchanged: copy it to start a plugin",
        "A hookgate plugin in JavaScript",
    );
    let mut files = vec![
        file("package.json", package),
        file("package-lock.json", JS_LOCK.replace(JS_TEMPLATE_NAME, name)),
        file("wit/plugin.wit", WIT),
        file("event.json", EVENT_JSON),
        file("README.md", readme::javascript(name)),
    ];
    files.extend(JS_FILES.iter().map(|(path, content)| file(path, *content)));
    files
}

fn python_files(name: &str) -> Vec<File> {
    let mut files = vec![
        (String::from("build.sh"), String::from(PY_BUILD), true),
        file("wit/plugin.wit", WIT),
        file("event.json", EVENT_JSON),
        file("README.md", readme::python(name)),
    ];
    files.extend(PY_FILES.iter().map(|(path, content)| file(path, *content)));
    files
}

fn write_all(dir: &Path, files: &[File]) -> Result<(), ScaffoldError> {
    let fail = |path: &Path, source| ScaffoldError::Write {
        path: path.to_owned(),
        source,
    };
    fs::create_dir_all(dir).map_err(|e| fail(dir, e))?;
    for (relative, content, executable) in files {
        let path = dir.join(relative);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(|e| fail(parent, e))?;
        }
        let mode = if *executable { 0o755 } else { 0o644 };
        let mut out = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&path)
            .map_err(|e| fail(&path, e))?;
        out.write_all(content.as_bytes()).map_err(|e| fail(&path, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_package_names() {
        assert!(valid_name("my-plugin"));
        assert!(valid_name("a_1"));
        assert!(!valid_name("My-plugin"));
        assert!(!valid_name("1abc"));
        assert!(!valid_name("a b"));
        assert!(!valid_name(""));
        assert!(!valid_name(&"a".repeat(65)));
    }

    #[test]
    fn each_language_gets_a_complete_folder_and_existing_paths_are_refused() {
        let root = std::env::temp_dir().join(format!("hookgate-scaffold-unit-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        for (lang, must) in [
            (
                Lang::Rust,
                &[
                    "Cargo.toml",
                    "src/lib.rs",
                    "hookgate-plugin-sdk/src/lib.rs",
                    "hookgate-plugin-sdk/wit/plugin.wit",
                ][..],
            ),
            (
                Lang::JavaScript,
                &[
                    "package.json",
                    "package-lock.json",
                    "build.mjs",
                    "src/plugin.js",
                    "wit/plugin.wit",
                ][..],
            ),
            (
                Lang::Python,
                &[
                    "build.sh",
                    "requirements.txt",
                    "src/plugin.py",
                    "src/main.py",
                    "wit/plugin.wit",
                ][..],
            ),
        ] {
            let dir = root.join(format!("p-{lang:?}").to_lowercase());
            let done = scaffold(&dir, lang).unwrap();
            for path in must.iter().chain(&["README.md", "event.json"]) {
                assert!(dir.join(path).is_file(), "{lang:?}: {path} missing");
            }
            let readme = fs::read_to_string(dir.join("README.md")).unwrap();
            assert!(
                readme.contains(&done.wasm),
                "{lang:?}: README does not name {}",
                done.wasm
            );
            assert!(matches!(scaffold(&dir, lang), Err(ScaffoldError::Exists(_))));
        }
        let manifest = fs::read_to_string(root.join("p-rust/Cargo.toml")).unwrap();
        assert!(manifest.contains("lto = true") && manifest.contains("[workspace]"));
        assert!(!sdk_manifest().contains("[workspace]"));
        let package = fs::read_to_string(root.join("p-javascript/package.json")).unwrap();
        assert!(package.contains("\"name\": \"p-javascript\""), "{package}");
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(root.join("p-python/build.sh"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o111, 0o111);
        assert!(matches!(
            scaffold(&root.join("Bad Name"), Lang::Rust),
            Err(ScaffoldError::Name(_))
        ));
        let _ = fs::remove_dir_all(&root);
    }
}
