//! The commands that show rather than move: `explain`, `compare`, `trace-check`.

use anyhow::{Context, Result};
use clap::Args;
use std::path::PathBuf;
use zclab::netns;
use zclab::report::{self, RunReport};
use zclab::transfer::Mode;

#[derive(Args)]
pub struct CompareArgs {
    /// Reports written by `zclab run --json`.
    #[arg(required = true, value_name = "REPORT.json")]
    pub reports: Vec<PathBuf>,
}

/// `zclab explain [MODE]`.
pub fn explain(mode: Option<Mode>) -> Result<bool> {
    match mode {
        Some(m) => print!("{}", zclab::explain::explain(m)),
        None => print!("{}", zclab::explain::list()),
    }
    Ok(true)
}

/// `zclab trace-check`.
pub fn trace_check() -> Result<bool> {
    netns::require_privileges("zclab trace-check (it loads BPF programs)")?;
    let mut t = zclab::trace::Tracer::load(None, None).map_err(anyhow::Error::msg)?;
    t.attach();
    let status = t.status();
    let working = status.iter().filter(|(_, why)| why.is_none()).count();
    for (tp, why) in &status {
        match why {
            None => println!("ok       {tp}"),
            Some(why) => println!("MISSING  {tp}: {why}"),
        }
    }
    println!("{working} of {} tracepoints work here", status.len());
    drop(t.finish());
    Ok(working == status.len())
}

/// `zclab compare REPORT.json...`.
pub fn compare(a: CompareArgs) -> Result<bool> {
    let mut runs = Vec::new();
    for p in &a.reports {
        let text = std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?;
        let r: RunReport =
            serde_json::from_str(&text).with_context(|| format!("{} is not a `zclab run --json` report", p.display()))?;
        runs.push(r);
    }
    print!("{}", report::compare_table(&runs));
    Ok(runs.iter().all(|r| r.verified))
}
