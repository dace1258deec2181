//! `hookgate-chaos`: see `hookgate_bench::chaos` and BENCHMARKS.md.

#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;

use hookgate_bench::chaos::{ChaosArgs, run_scenario};

fn main() -> ExitCode {
    let args = ChaosArgs::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("hookgate-chaos: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut reports = Vec::new();
    for &scenario in &args.scenarios {
        match runtime.block_on(run_scenario(&args, scenario)) {
            Ok(report) => {
                if !args.json {
                    print!("{report}");
                }
                reports.push(report);
            }
            Err(e) => {
                eprintln!("hookgate-chaos: {}: {e:#}", scenario.name());
                return ExitCode::FAILURE;
            }
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&reports).unwrap_or_default());
    }
    if reports.iter().all(|r| r.held()) {
        ExitCode::SUCCESS
    } else {
        eprintln!("hookgate-chaos: a scenario lost deliveries or did not drain");
        ExitCode::FAILURE
    }
}
