//! The `hookgate` command line.

#![forbid(unsafe_code)]

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
use hookgate::plugin::{PluginLimits, PluginRuntime};

#[derive(Parser)]
#[command(name = "hookgate", version, about = "Webhook delivery gateway")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// `--config PATH`, shared by every command that reads the config.
#[derive(clap::Args)]
struct ConfigPath {
    /// Config file [default: $HOOKGATE_CONFIG or ./config.toml]
    #[arg(
        long = "config",
        env = "HOOKGATE_CONFIG",
        default_value = "config.toml",
        hide_default_value = true
    )]
    path: PathBuf,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Serve {
        #[command(flatten)]
        config: ConfigPath,
        /// Log line format on stderr.
        #[arg(long, value_enum, default_value_t = LogFormat::Text)]
        log_format: LogFormat,
    },
    /// Validate the config; print `ok` or every error as PATH:LINE:COL: message.
    Check {
        #[command(flatten)]
        config: ConfigPath,
    },
    /// Tools for plugin authors.
    Plugin {
        #[command(subcommand)]
        command: PluginCommand,
    },
    /// A local webhook receiver: verifies signatures, prints each delivery,
    /// and can misbehave on request to show retries.
    Receive {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:9000")]
        listen: String,
        /// The webhook's signing secret (without it, signatures are not checked).
        #[arg(long, env = "HOOKGATE_RECEIVE_SECRET", hide_env_values = true)]
        secret: Option<String>,
        /// Answer every request with this status code.
        #[arg(long, value_parser = clap::value_parser!(u16).range(200..600))]
        status: Option<u16>,
        /// Answer the first N requests with an error (503, or --status if it is one).
        #[arg(long, default_value_t = 0)]
        fail_first: u64,
        /// Wait this long before answering (e.g. 2s, 500ms).
        #[arg(long, value_parser = parse_duration_arg, default_value = "0s")]
        delay: std::time::Duration,
        /// Send Retry-After: SECONDS with error answers.
        #[arg(long)]
        retry_after: Option<u64>,
    },
    /// Move state between stores (embedded <-> Redis), as JSON lines.
    Store {
        #[command(subcommand)]
        command: StoreCommand,
    },
}

#[derive(Subcommand)]
enum StoreCommand {
    /// Write webhooks (with secrets and state), waiting and dead deliveries
    /// with their attempts, and the events they need. An embedded store must
    /// not be in use by a running gateway.
    Export {
        #[command(flatten)]
        config: ConfigPath,
        /// Write here instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Read an export into the store of this config (idempotent: what is
    /// already there is kept).
    Import {
        #[command(flatten)]
        config: ConfigPath,
        /// Read from here instead of stdin.
        #[arg(long = "in")]
        input: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum PluginCommand {
    /// Run one plugin on one event exactly as the gateway would and print the
    /// verdict, headers, body and time taken. Exit 0 forward, 2 drop, 1 error.
    Run {
        /// The plugin: a WebAssembly component (.wasm).
        plugin: PathBuf,
        /// A `POST /api/events` body {"type": ..., "data": ..., "test"?: ...}:
        /// a file, `-` for standard input, or the JSON itself.
        #[arg(long)]
        event: PathBuf,
        /// A plugin config entry; repeat for several.
        #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_key_value)]
        set: Vec<(String, String)>,
        /// Time limit of the call, like a webhook plugin's `timeout` [default: 100ms].
        #[arg(long, value_name = "DURATION", value_parser = parse_duration_arg)]
        timeout: Option<std::time::Duration>,
        /// Memory limit of the instance, like a webhook plugin's `max_memory` [default: 32MiB].
        #[arg(long, value_name = "SIZE", value_parser = hookgate::config::parse_size)]
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

fn parse_duration_arg(s: &str) -> Result<std::time::Duration, hookgate::config::UnitError> {
    hookgate::config::parse_duration(s)
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
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
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
    // Colour only on a terminal: a log file gets plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
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
        Command::Check { config } => check(&config.path),
        Command::Receive {
            listen,
            secret,
            status,
            fail_first,
            delay,
            retry_after,
        } => receive(
            &listen,
            hookgate::receive::Behaviour {
                secret,
                status,
                fail_first,
                delay,
                retry_after,
            },
        ),
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
        Command::Store { command } => match store_command(command) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("hookgate: {e:#}");
                ExitCode::FAILURE
            }
        },
        Command::Serve { config, log_format } => {
            init_tracing(log_format);
            match serve(config.path) {
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

fn receive(listen: &str, behaviour: hookgate::receive::Behaviour) -> ExitCode {
    let checked = behaviour.secret.is_some();
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .and_then(|rt| {
            rt.block_on(async {
                let listener = tokio::net::TcpListener::bind(listen).await?;
                println!(
                    "hookgate receive: listening on http://{} ({})",
                    listener.local_addr()?,
                    if checked {
                        "verifying signatures"
                    } else {
                        "not verifying signatures: pass --secret"
                    }
                );
                hookgate::receive::run(listener, behaviour).await
            })
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hookgate receive: cannot listen on {listen}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn serve(path: PathBuf) -> anyhow::Result<()> {
    let config = Config::load(&path).map_err(|e| anyhow::anyhow!("invalid config:\n{e}"))?;
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = config.server.worker_threads {
        runtime.worker_threads(threads);
    }
    let runtime = runtime.enable_all().build().context("starting the async runtime")?;
    let served = runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&config.server.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.server.listen))?;
        let shutdown = CancellationToken::new();
        tokio::spawn(on_signal(shutdown.clone()));
        hookgate::run(config, listener, shutdown).await?;
        Ok(())
    });
    drop(runtime);
    close_stores();
    served
}

/// Lets an embedded store close its data file before the process exits.
fn close_stores() {
    if !hookgate::store::embedded::wait_closed(std::time::Duration::from_secs(10)) {
        tracing::warn!("the data file was not closed in time; the next start will check it");
    }
}

/// `store export` / `store import`: the summary goes to stderr, so stdout
/// carries only the export.
fn store_command(command: StoreCommand) -> anyhow::Result<()> {
    use hookgate::store::transfer;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let (StoreCommand::Export { config, .. } | StoreCommand::Import { config, .. }) = &command;
    let config = Config::load(&config.path).map_err(|e| anyhow::anyhow!("invalid config:\n{e}"))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let done = runtime.block_on(async move {
        let store = hookgate::open_store(&config).await?;
        match command {
            StoreCommand::Export { out, .. } => {
                let stats = match out {
                    Some(path) => {
                        let file = tokio::fs::File::create(&path)
                            .await
                            .with_context(|| format!("cannot create {}", path.display()))?;
                        transfer::export(store.as_ref(), &mut tokio::io::BufWriter::new(file)).await?
                    }
                    None => {
                        transfer::export(store.as_ref(), &mut tokio::io::BufWriter::new(tokio::io::stdout())).await?
                    }
                };
                eprintln!(
                    "exported {} webhooks, {} events, {} deliveries",
                    stats.webhooks, stats.events, stats.deliveries
                );
            }
            StoreCommand::Import { input, .. } => {
                let stats = match input {
                    Some(path) => {
                        let file = tokio::fs::File::open(&path)
                            .await
                            .with_context(|| format!("cannot read {}", path.display()))?;
                        transfer::import(store.as_ref(), tokio::io::BufReader::new(file)).await?
                    }
                    None => transfer::import(store.as_ref(), tokio::io::BufReader::new(tokio::io::stdin())).await?,
                };
                eprintln!(
                    "imported {} webhooks, {} events, {} deliveries ({} already there, kept as they were)",
                    stats.webhooks, stats.events, stats.deliveries, stats.skipped
                );
            }
        }
        anyhow::Ok(())
    });
    drop(runtime);
    close_stores();
    done
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
