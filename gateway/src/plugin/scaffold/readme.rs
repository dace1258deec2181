//! The README of a scaffolded plugin: build, try, configure, for that
//! folder and name.

fn config_and_limits(name: &str, wasm: &str) -> String {
    format!(
        "## Use it in the gateway

Name the component in the gateway's `config.toml` (paths are relative to the
folder of `config.toml`; this assumes `{name}/` sits next to it):

```toml
[[webhooks.plugins]]
path = \"{name}/{wasm}\"
config = {{}}            # string values, handed to the plugin
timeout = \"100ms\"      # per call (the default)
max_memory = \"32MiB\"   # per instance (the default)
```

`hookgate check --config config.toml` loads it and runs its config check.
The gateway compiles it once (cached in `[plugins] cache_dir`) and reloads it
when the file changes.

## Limits

Each call gets `timeout` (default 100 ms) and `max_memory` (default 32 MiB);
going over fails that delivery attempt with an error naming the limit. The
plugin has no files, network, environment or arguments; stdout, stderr and
log lines go to the gateway log at debug level. Instances are reused between
calls, so globals may survive from one event to the next, or not: rely on
neither. `hookgate plugin run` prints the time and memory a call took; try
your real events with `--timeout` and `--max-memory` set to what you will
configure.

`hookgate` itself: `cargo install --path gateway` in a hookgate checkout, or
the release binary (`target/release/hookgate` after `cargo build --release`).
"
    )
}

/// README for a Rust plugin.
pub(super) fn rust(name: &str, wasm: &str) -> String {
    format!(
        "# {name}

A hookgate plugin in Rust. It forwards every event unchanged: change
`handle` in `src/lib.rs`. The SDK (`hookgate-plugin-sdk/`, with the plugin
ABI in `hookgate-plugin-sdk/wit/plugin.wit`) was written here by
`hookgate plugin new`; its API is in `cargo doc --open -p hookgate-plugin-sdk`.

## Build and try

```sh
rustup target add wasm32-wasip2     # once
cargo build --target wasm32-wasip2 --release
hookgate plugin run {wasm} --event event.json
cargo test                          # the unit tests, on your machine's target
```

`event.json` has the shape of a `POST /api/events` body (`{{\"type\", \"data\"}}`);
`--set key=value` passes config entries.

{}",
        config_and_limits(name, wasm)
    )
}

/// README for a JavaScript plugin.
pub(super) fn javascript(name: &str) -> String {
    format!(
        "# {name}

A hookgate plugin in JavaScript. It forwards every event unchanged: change
`handle` in `src/plugin.js` (the comment there lists what `event` holds and
what `handle` may return). `src/index.js` and `src/hookgate.js` wire it to
the plugin ABI in `wit/plugin.wit`; you do not need to edit them.

## Build and try

Needs Node.js 18 or later.

```sh
npm install          # once; `npm ci` installs exactly package-lock.json
npm run build        # -> dist/plugin.wasm
hookgate plugin run dist/plugin.wasm --event event.json
```

The component embeds the SpiderMonkey engine (ComponentizeJS), so it is
about 12 MiB; the gateway compiles it once (several seconds) and caches the
result. The script may import other files in `src/` by relative path; it
cannot use Node.js modules (`fs`, `http`...), `fetch`, or npm packages that
need them.

{}",
        config_and_limits(name, "dist/plugin.wasm")
    )
}

/// README for a Python plugin.
pub(super) fn python(name: &str) -> String {
    format!(
        "# {name}

A hookgate plugin in Python. It forwards every event unchanged: change
`handle` in `src/plugin.py`. `src/hookgate.py` has the helpers (`forward`,
`forward_json`, `drop`, `body_json`, `log`...) and `src/main.py` wires the
module to the plugin ABI in `wit/plugin.wit`; you do not need to edit it.

## Build and try

Needs Python 3.10 or later to run the build tool.

```sh
./build.sh           # makes .venv with the pinned componentize-py; -> dist/plugin.wasm
hookgate plugin run dist/plugin.wasm --event event.json
```

`build.sh` also writes the typed bindings (`Event`, `Verdict`...) to
`bindings/`; point your editor there. The component embeds CPython and its
standard library, so it is about 18 MiB; the gateway compiles it once
(several seconds) and caches the result. Pure-Python modules you put in
`src/` are bundled; packages with native extensions are not supported.

{}",
        config_and_limits(name, "dist/plugin.wasm")
    )
}
