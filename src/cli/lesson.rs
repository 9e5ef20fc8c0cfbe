//! `zclab lesson`, and the helpers lessons run in a child process.

use anyhow::{bail, Context, Result};
use clap::Args;
use std::path::PathBuf;

use super::{parse_size, print};

#[derive(Args)]
#[command(after_help = "\
Each lesson makes its own lab environment and file, runs its experiments, prints the
evidence, then its claims, each marked `holds` or `DOES NOT HOLD on this machine` with the
numbers that decide it. A claim that does not hold is a finding, not a failure: the exit
status is 0 whenever the lesson ran. The texts are in docs/lessons/. Examples:
    zclab lesson                 # the list
    zclab lesson 1 --size 64M    # the read-write lesson on a 64 MiB file")]
pub struct LessonArgs {
    /// The lesson's number (none: list the lessons).
    pub number: Option<u32>,
    /// Size of the file the lesson moves, in bytes or with K, M, G (powers of 1024).
    #[arg(long, default_value = "64M", value_name = "SIZE")]
    pub size: String,
    /// Leave out the kernel's counters (`--trace`), which the lessons use where they work.
    #[arg(long)]
    pub no_trace: bool,
    /// Print the findings as JSON.
    #[arg(long)]
    pub json: bool,
    /// Check the lesson's assignment instead of running the lesson (lessons that have one):
    /// exit status 0 only if every check holds.
    #[arg(long)]
    pub check: bool,
}

pub fn exec(a: LessonArgs) -> Result<bool> {
    let Some(n) = a.number else {
        print!("{}", zclab::lessons::list());
        return Ok(true);
    };
    let Some(lesson) = zclab::lessons::find(n) else {
        bail!("there is no lesson {n}; `zclab lesson` lists them");
    };
    let size = parse_size(&a.size)?;
    let findings = zclab::lessons::run(lesson, size, !a.no_trace, a.check)?;
    print(a.json, &findings, zclab::lessons::text);
    // A lesson's claims are findings; an assignment's checks must hold.
    Ok(!a.check || findings.claims.iter().all(|c| c.holds))
}

/// `zclab lesson-helper WHAT FILE`.
pub fn helper(what: &str, file: &PathBuf) -> Result<bool> {
    match what {
        "touch-past-end" => {
            let f = std::fs::File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
            let b = zclab::sys::file::touch_past_end(&f)?;
            bail!("read {b} past the end of the file without a signal: the file was longer than a page");
        }
        other => bail!("unknown lesson helper {other:?}"),
    }
}
