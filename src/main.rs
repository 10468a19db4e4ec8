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
/// CPU time, mimalloc about half of that. Built without transparent huge
/// pages (the `no_thp` feature: the process opts out by `prctl`): where the
/// kernel grants them on request (`madvise`, Debian's default), mimalloc
/// asks for them, and memory it returns and takes back costs a 2 MiB page
/// zeroed at each fault. The evidence service spent about 4 µs of CPU per
/// record on that (`cargo bench --bench evidence_throughput`, 200,000
/// records: 39.0-39.7 µs per record in all without, 43.1-43.9 with).
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
