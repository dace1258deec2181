//! The `hookgate` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use tokio_util::sync::CancellationToken;

use hookgate::config::Config;

/// mimalloc: malloc/free were a fifth of the gateway's CPU under load with
/// glibc's allocator (BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use hookgate::dispatch::PluginRuntime;
use hookgate::plugin::PluginLimits;

#[derive(Parser)]
#[command(name = "hookgate", version, about = "Webhook delivery gateway")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Serve {
        /// Config file [default: $HOOKGATE_CONFIG or ./config.toml]
        #[arg(
            long,
            env = "HOOKGATE_CONFIG",
            default_value = "config.toml",
            hide_default_value = true
        )]
        config: PathBuf,
        /// Log line format on stderr.
        #[arg(long, value_enum, default_value_t = LogFormat::Text)]
        log_format: LogFormat,
    },
    /// Validate the config; print `ok` or every error as PATH:LINE:COL: message.
    Check {
        #[arg(
            long,
            env = "HOOKGATE_CONFIG",
            default_value = "config.toml",
            hide_default_value = true
        )]
        config: PathBuf,
    },
    /// Tools for plugin authors.
    Plugin {
        #[command(subcommand)]
        command: PluginCommand,
    },
}

#[derive(Subcommand)]
enum PluginCommand {
    /// Run one plugin on one event exactly as the gateway would and print the
    /// verdict, headers, body and time taken. Exit 0 forward, 2 drop, 1 error.
    Run {
        /// The plugin: a WebAssembly component (.wasm).
        plugin: PathBuf,
        /// A `POST /api/events` body: {"type": ..., "data": ..., "test"?: ...}.
        #[arg(long)]
        event: PathBuf,
        /// A plugin config entry; repeat for several.
        #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_key_value)]
        set: Vec<(String, String)>,
        /// Time limit of the call, like a webhook plugin's `timeout` [default: 100ms].
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        timeout: Option<std::time::Duration>,
        /// Memory limit of the instance, like a webhook plugin's `max_memory` [default: 32MiB].
        #[arg(long, value_name = "SIZE", value_parser = parse_size)]
        max_memory: Option<u64>,
    },
    /// Write a working plugin folder NAME from the built-in templates and
    /// print its build command.
    New {
        /// The folder to create; its last component is the plugin's name.
        name: PathBuf,
        /// The plugin's language.
        #[arg(long, value_enum)]
        lang: PluginLang,
    },
}

/// `plugin new --lang`.
#[derive(Clone, Copy, ValueEnum)]
enum PluginLang {
    Rust,
    #[value(alias = "javascript")]
    Js,
    #[value(alias = "py")]
    Python,
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("invalid duration {s:?} ({e}); use e.g. \"250ms\" or \"2s\""))
}

/// `32MiB`, `512KiB`, `1GiB` or a number of bytes.
fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let bad = || format!("invalid size {s:?}; use e.g. \"64MiB\", \"512KiB\" or a number of bytes");
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        _ => return Err(bad()),
    };
    n.checked_mul(mult).ok_or_else(bad)
}

fn parse_key_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("expected KEY=VALUE, got {s:?}"))
}

/// `plugin run`: guest logs (debug and up) and warnings on stderr; the
/// verdict on stdout.
fn run_plugin(plugin: PathBuf, event: PathBuf, set: Vec<(String, String)>, limits: PluginLimits) -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,hookgate::plugin::guest=debug"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .without_time()
        .init();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("hookgate: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(hookgate::plugin::cli::run_cli(&plugin, &event, &set, limits));
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

/// `plugin new`: writes the folder, then says how to build and try it.
fn new_plugin(name: &std::path::Path, lang: PluginLang) -> ExitCode {
    use hookgate::plugin::scaffold::{Lang, scaffold};
    let lang = match lang {
        PluginLang::Rust => Lang::Rust,
        PluginLang::Js => Lang::JavaScript,
        PluginLang::Python => Lang::Python,
    };
    match scaffold(name, lang) {
        Ok(done) => {
            let dir = done.dir.display();
            println!("created {dir}/ ({lang:?} plugin; see {dir}/README.md)\n");
            println!("build it:\n  {}\n", done.build);
            println!(
                "then try it (in {dir}/):\n  hookgate plugin run {} --event event.json",
                done.wasm
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// `check`: the config, then every plugin it names (loaded and asked to
/// validate its config), each problem as `PATH:LINE:COL: message`.
fn check(path: &std::path::Path) -> ExitCode {
    let config = match Config::load(path) {
        Ok(c) => c,
        Err(errors) => {
            println!("{errors}");
            return ExitCode::FAILURE;
        }
    };
    let Ok(runtime) = tokio::runtime::Builder::new_multi_thread().enable_all().build() else {
        println!("{}:1:1: cannot start the async runtime", path.display());
        return ExitCode::FAILURE;
    };
    let problems: Vec<String> = runtime.block_on(async {
        let plugins = PluginRuntime::new(config.plugins.cache_dir.clone(), 4);
        let mut problems = Vec::new();
        for w in &config.webhooks {
            for spec in &w.plugins {
                if let Err((_, e)) = plugins.validate(std::slice::from_ref(spec)).await {
                    let (line, col) = spec.position.unwrap_or((1, 1));
                    problems.push(format!(
                        "{}:{line}:{col}: webhook {:?}: plugin {:?}: {e}",
                        path.display(),
                        w.id,
                        spec.path
                    ));
                }
            }
        }
        problems
    });
    if problems.is_empty() {
        println!("ok");
        ExitCode::SUCCESS
    } else {
        println!("{}", problems.join("\n"));
        ExitCode::FAILURE
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config } => check(&config),
        Command::Plugin {
            command:
                PluginCommand::Run {
                    plugin,
                    event,
                    set,
                    timeout,
                    max_memory,
                },
        } => {
            let defaults = PluginLimits::default();
            let limits = PluginLimits {
                timeout: timeout.unwrap_or(defaults.timeout),
                max_memory: max_memory.unwrap_or(defaults.max_memory),
            };
            run_plugin(plugin, event, set, limits)
        }
        Command::Plugin {
            command: PluginCommand::New { name, lang },
        } => new_plugin(&name, lang),
        Command::Serve { config, log_format } => {
            init_tracing(log_format);
            match serve(config) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e:#}");
                    eprintln!("hookgate: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn serve(path: PathBuf) -> anyhow::Result<()> {
    let config = Config::load(&path).map_err(|e| anyhow::anyhow!("invalid config:\n{e}"))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&config.server.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.server.listen))?;
        let shutdown = CancellationToken::new();
        tokio::spawn(on_signal(shutdown.clone()));
        hookgate::run(config, listener, shutdown).await?;
        Ok(())
    })
}

async fn on_signal(shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = int.recv() => tracing::info!("SIGINT received"),
    }
    shutdown.cancel();
}
