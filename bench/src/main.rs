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
    let mut reports = Vec::new();
    for args in args.runs() {
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
            Ok(report) => reports.push(report),
            Err(e) => {
                eprintln!("hookgate-bench: {e:#}");
                return ExitCode::FAILURE;
            }
        }
    }
    if let Some(path) = &args.json_out {
        let json = match reports.as_slice() {
            [one] => one.to_json(),
            many => serde_json::to_string_pretty(many).unwrap_or_default(),
        };
        if let Err(e) = std::fs::write(path, json) {
            eprintln!("hookgate-bench: cannot write {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    if args.json {
        match reports.as_slice() {
            [one] => println!("{}", one.to_json()),
            many => println!("{}", serde_json::to_string_pretty(many).unwrap_or_default()),
        }
    } else {
        for report in &reports {
            print!("{report}");
        }
        if reports.len() > 1 {
            print!("\n{}", hookgate_bench::table::side_by_side(&reports));
        }
    }
    ExitCode::SUCCESS
}
