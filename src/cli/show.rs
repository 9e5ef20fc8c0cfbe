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

#[derive(Args)]
#[command(after_help = "\
It asks the kernel rather than guessing from a version: a socket option on a fresh
socket, an io_uring probe, a statx of a file it makes in DIR. The AF_XDP and XDP rows
are tried on a veth pair it makes for the purpose and removes. A named interface is
only read (the driver's XDP features from the netdev netlink family, its queues and
MTU), unless --probe asks to bind test sockets and attach the program on it too.
Exit status 1 if a required row does not work. Examples:
    zclab doctor
    zclab doctor --iface eth0 --dir /data            # a real NIC: read only
    zclab doctor --iface eth0 --probe                # ... and try it (briefly attaches XDP)")]
pub struct DoctorArgs {
    /// An interface to report on.
    #[arg(long, value_name = "IFACE")]
    pub iface: Option<String>,
    /// Where files would go: checked for O_DIRECT and its alignment.
    #[arg(long, default_value = "/var/tmp", value_name = "DIR")]
    pub dir: PathBuf,
    /// Also bind test AF_XDP sockets and attach the XDP program (native and generic) on
    /// --iface, for a moment each. On a busy interface that interrupts its traffic briefly.
    #[arg(long, requires = "iface")]
    pub probe: bool,
    /// Enter this network namespace first (like `ip netns exec`).
    #[arg(long, value_name = "NAMESPACE")]
    pub netns: Option<String>,
    /// Print the rows as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `zclab doctor`.
pub fn doctor(a: DoctorArgs) -> Result<bool> {
    super::enter_netns(&a.netns)?;
    let d = zclab::doctor::doctor(&zclab::doctor::DoctorConfig { iface: a.iface, dir: a.dir, probe: a.probe });
    super::print(a.json, &d, zclab::doctor::text);
    Ok(d.failing == 0)
}
