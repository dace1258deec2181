//! `hookgate-bench`: run one load scenario against hookgate and print the
//! report (a table, or JSON with `--json`). See BENCHMARKS.md.

#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;

use hookgate_bench::cli::Args;

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("hookgate-bench: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut attempt = 0;
    let result = loop {
        match runtime.block_on(hookgate_bench::run::run(&args)) {
            Ok(report) if report.disturbed() && attempt < args.retry_disturbed => {
                attempt += 1;
                eprintln!("hookgate-bench: other load disturbed the measurement; running again ({attempt})");
            }
            other => break other,
        }
    };
    match result {
        Ok(report) => {
            if let Some(path) = &args.json_out
                && let Err(e) = std::fs::write(path, report.to_json())
            {
                eprintln!("hookgate-bench: cannot write {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
            if args.json {
                println!("{}", report.to_json());
            } else {
                print!("{report}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("hookgate-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}
