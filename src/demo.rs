//! `pci-scope-guard demo`: a synthetic multi-cloud estate, analysed end to
//! end, with every output a newcomer should see.

use std::path::{Path, PathBuf};

use clap::Args;
use psg_config::Config;

use crate::analyze::{self, AnalyzeArgs, OutputFormat};
use crate::error::CliError;

/// Flags of `demo`.
#[derive(Debug, Args, Clone)]
pub(crate) struct DemoArgs {
    /// Where the estate's files and every output go.
    #[arg(long, default_value = "./demo-out", value_name = "DIR")]
    pub out_dir: PathBuf,
    /// Seed of the synthetic estate (the same seed gives the same files).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

fn io(p: &Path, e: std::io::Error) -> CliError {
    CliError::Runtime(format!("{}: {e}", p.display()))
}

/// Runs the demo.
pub(crate) async fn execute(cfg: Config, args: DemoArgs) -> Result<(), CliError> {
    let started = std::time::Instant::now();
    let estate = psg_estate::generate(args.seed);
    let input = args.out_dir.join("input");
    if input.exists() {
        std::fs::remove_dir_all(&input).map_err(|e| io(&input, e))?;
    }
    let (mut inventory, mut flows) = (Vec::new(), Vec::new());
    for f in &estate.files {
        let path = input.join(&f.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io(parent, e))?;
        }
        std::fs::write(&path, &f.bytes).map_err(|e| io(&path, e))?;
        match f.kind {
            psg_estate::FileKind::Inventory => inventory.push(path),
            psg_estate::FileKind::FlowLogs => flows.push(path),
        }
    }
    eprintln!(
        "demo: generated a synthetic estate of {} resources and {} flow records on AWS, Azure and GCP in {}",
        estate.expected.resources,
        estate.expected.flow_records,
        input.display()
    );
    let analyze_args =
        AnalyzeArgs { out_dir: Some(args.out_dir.clone()), ..AnalyzeArgs::of(inventory, flows, OutputFormat::Table) };
    let outcome = analyze::run(cfg, &analyze_args, Some(args.out_dir.join("dead-letters.jsonl"))).await?;
    let verified = analyze::write_outputs(&args.out_dir, &outcome)?;
    let a = &outcome.analysis;
    let s = &a.summary;
    let dir = args.out_dir.display();
    println!(
        "PCI Scope Guard demo: {} systems analysed from {} flow records ({:.1} s)",
        s.cde + s.connected_cde + s.out_of_scope + s.pending_review,
        s.flow_records,
        started.elapsed().as_secs_f64()
    );
    println!();
    println!("  cde             {:>4}   the cardholder data environment", s.cde);
    println!("  connected-cde   {:>4}   connected to it by observed flows or declared", s.connected_cde);
    println!("  out-of-scope    {:>4}", s.out_of_scope);
    println!("  pending-review  {:>4}   untagged, no CDE flows", s.pending_review);
    println!();
    let mut counts: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    for al in &a.alerts {
        *counts.entry(al.alert_type.as_str()).or_default() += 1;
    }
    println!("Alerts: {}", a.alerts.len());
    for al in a.alerts.iter().filter(|al| al.severity == "critical" || al.alert_type == "unknown_system") {
        println!("  [{}] {}", al.severity, al.title);
    }
    for (t, n) in &counts {
        println!("  {n:>4} {t}");
    }
    println!();
    println!("Evidence: {verified}");
    println!();
    println!("Written to {dir}/:");
    for (what, why) in [
        ("report.md, report.json, report.csv", "the scope report (Markdown for the assessor, JSON, CSV)"),
        ("diagram.svg, diagram.mmd, diagram.dot", "the network / data-flow diagram (SVG, Mermaid, DOT)"),
        ("evidence/", "the signed evidence bundle (manifest.json, documents, public keys)"),
        ("evidence-verification.txt", "its verification (pci-scope-guard evidence verify DIR/evidence)"),
        ("input/", "the estate's inventory and flow logs, in the providers' formats"),
    ] {
        println!("  {what:<38} {why}");
    }
    println!();
    println!("Next: open {dir}/diagram.svg, read {dir}/report.md, or analyse your own files with");
    println!("  pci-scope-guard analyze --inventory DIR --flows DIR --output table");
    Ok(())
}
