//! `pci-scope-guard`: the one binary. Each service runs as a subcommand
//! (`ingest`, `correlate`, `classify`, `evidence`), `run` starts all four in
//! one process, and the operator commands (`migrate`, `keygen`) live beside
//! them. See `--help`.

mod analyze;
mod cli;
mod db;
mod demo;
mod error;
mod evidence_cmd;
mod grc_cmd;
mod operate;
mod services;

use std::process::ExitCode;

use clap::Parser;

/// mimalloc: the services allocate and free small strings per flow record
/// (decoding, attribution); glibc's malloc took a quarter of `analyze`'s
/// CPU time, mimalloc about half of that.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(cli::execute(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", e.report());
            ExitCode::from(e.exit_code())
        }
    }
}
