//! Lesson 12: cache pollution, measured without hardware counters.
//!
//! Every CPU copy drags the copied bytes through the CPU's caches and
//! pushes out what was there. This VM has no hardware cache counters, so a
//! *victim* measures it instead: a thread that chases pointers through an
//! array about the size of the caches, counting its loads per second of
//! its *own* CPU time (so that sharing the core does not count, only what
//! the cache does to it). Pinned to the core where a transfer runs, it
//! slows down as much as the transfer evicts its data.

use super::{bytes, Claim, Experiment, Findings, Lab, Lesson};
use crate::sys::sched::{cpus, pin_to_cpu, thread_cpu_time};
use crate::transfer::{Mode, DEFAULT_CHUNK};
use anyhow::{Context, Result};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const LESSON: Lesson = Lesson {
    number: 12,
    slug: "cache",
    title: "Cache pollution without hardware counters",
    learn: "how a transfer on the same core slows a memory-bound neighbour, measured in the neighbour's own CPU time, and whether copying paths pollute more than zero-copy ones here",
    run,
    check: None,
};

/// The victim's array: 1 MiB, in cache lines of 64 bytes.
const LINES: usize = (1 << 20) / 64;
/// How long each phase runs.
const PHASE: Duration = Duration::from_millis(1500);

/// A pointer-chasing victim on one CPU: loads per second of its own CPU time, phase by phase.
struct Victim {
    stop: Arc<AtomicBool>,
    /// Loads and CPU nanoseconds since the last `take`.
    loads: Arc<AtomicU64>,
    cpu_ns: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<Result<()>>>,
}

impl Victim {
    fn start(cpu: usize) -> Victim {
        let (stop, loads, cpu_ns) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let (s, l, c) = (stop.clone(), loads.clone(), cpu_ns.clone());
        let thread = std::thread::spawn(move || -> Result<()> {
            pin_to_cpu(cpu)?;
            // One random cycle through every line: each load depends on the last.
            let mut order: Vec<usize> = (0..LINES).collect();
            let mut x: u64 = 0x2545_F491_4F6C_DD1D;
            for i in (1..LINES).rev() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                order.swap(i, (x % (i as u64 + 1)) as usize);
            }
            let mut next = vec![0usize; LINES * 8]; // 8 words = one 64-byte line per slot
            for w in 0..LINES {
                next[order[w] * 8] = order[(w + 1) % LINES] * 8;
            }
            let mut at = 0usize;
            let mut t0 = thread_cpu_time();
            while !s.load(Ordering::Relaxed) {
                for _ in 0..4096 {
                    at = next[at];
                }
                let t = thread_cpu_time();
                l.fetch_add(4096, Ordering::Relaxed);
                c.fetch_add((t - t0).as_nanos() as u64, Ordering::Relaxed);
                t0 = t;
            }
            std::hint::black_box(at);
            Ok(())
        });
        Victim { stop, loads, cpu_ns, thread: Some(thread) }
    }

    /// Loads per CPU second since the last call, and the CPU seconds it had.
    fn take(&self) -> (f64, f64) {
        let (l, c) = (self.loads.swap(0, Ordering::Relaxed), self.cpu_ns.swap(0, Ordering::Relaxed));
        let secs = c as f64 / 1e9;
        (if c == 0 { 0.0 } else { l as f64 / secs }, secs)
    }
}

impl Drop for Victim {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Runs transfers of `mode` (None: nothing) for one phase; returns the bytes moved.
fn phase(lab: &mut Lab, mode: Option<Mode>) -> Result<u64> {
    let start = Instant::now();
    let mut moved = 0;
    while start.elapsed() < PHASE {
        match mode {
            Some(m) => {
                lab.transfer(m, DEFAULT_CHUNK, false)?;
                moved += lab.size;
            }
            None => std::thread::sleep(Duration::from_millis(50)),
        }
    }
    Ok(moved)
}

/// Each transfer moves at least this much, so that moving data, not starting
/// processes and hashing, fills the victim's time.
const MIN_FILE: u64 = 256 << 20;

fn run(lab: &mut Lab) -> Result<Findings> {
    let asked = lab.size;
    lab.at_least(MIN_FILE)?;
    let cpu_count = cpus();
    // The transfers' processes inherit this thread's CPU: both ends on CPU 0.
    pin_to_cpu(0).context("pinning to CPU 0")?;
    let modes = [Mode::ReadWrite, Mode::Sendfile, Mode::Splice];
    let mut rows = Vec::new();
    let mut same = Vec::new();
    let victim = Victim::start(0);
    std::thread::sleep(Duration::from_millis(200)); // it builds its array
    victim.take();
    phase(lab, None)?;
    let (idle, _) = victim.take();
    rows.push(vec!["nothing".into(), "0 B".into(), format!("{:.1}", idle / 1e6), "0.0".into(), "-".into()]);
    // Loads the victim lost per MiB the transfer moved: the pollution per byte.
    let per_mib = |rate: f64, secs: f64, moved: u64| (idle - rate) * secs / (moved as f64 / (1 << 20) as f64);
    for m in modes {
        victim.take();
        let moved = phase(lab, Some(m))?;
        let (rate, secs) = victim.take();
        let loss = 100.0 * (1.0 - rate / idle);
        same.push((m, loss, moved));
        rows.push(vec![
            m.name().into(),
            bytes(moved),
            format!("{:.1}", rate / 1e6),
            format!("{loss:.1}"),
            format!("{:.0}", per_mib(rate, secs, moved)),
        ]);
    }
    drop(victim);
    let mut other = None;
    if cpu_count > 1 {
        let victim = Victim::start(1);
        std::thread::sleep(Duration::from_millis(200));
        victim.take();
        phase(lab, None)?;
        let (idle1, _) = victim.take();
        rows.push(vec!["nothing, victim on CPU 1".into(), "0 B".into(), format!("{:.1}", idle1 / 1e6), "0.0".into(), "-".into()]);
        victim.take();
        let moved = phase(lab, Some(Mode::ReadWrite))?;
        let (rate, _) = victim.take();
        let loss = 100.0 * (1.0 - rate / idle1);
        other = Some(loss);
        rows.push(vec![
            "read-write, victim on CPU 1".into(),
            bytes(moved),
            format!("{:.1}", rate / 1e6),
            format!("{loss:.1}"),
            "-".into(),
        ]);
    }
    let loss_of = |m: Mode| same.iter().find(|s| s.0 == m).map_or(0.0, |s| s.1);
    let (rw, sf, sp) = (loss_of(Mode::ReadWrite), loss_of(Mode::Sendfile), loss_of(Mode::Splice));
    let mut claims = vec![
        Claim::new(
            "A transfer on the victim's core evicts its data: fewer loads per second of the victim's own CPU time",
            same.iter().all(|s| s.1 > 5.0),
            format!("loss against idle: read-write {rw:.1}%, sendfile {sf:.1}%, splice {sp:.1}%"),
        ),
        Claim::new(
            "The copying path (read-write) pollutes more than the zero-copy paths (sendfile, splice)",
            rw > sf + 5.0 && rw > sp + 5.0,
            format!(
                "loss: read-write {rw:.1}%, sendfile {sf:.1}%, splice {sp:.1}% (veth's and the receiver's copies run on the \
                 same core for every path)"
            ),
        ),
    ];
    if let Some(loss) = other {
        claims.push(Claim::new(
            "On the other core the victim does not notice (its caches are its own)",
            loss.abs() < 10.0,
            format!("loss with read-write on CPU 0 and the victim on CPU 1: {loss:.1}% (the cores share the last-level cache and the memory bus)"),
        ));
    }
    Ok(Findings {
        lesson: 12,
        assignment: false,
        title: LESSON.title.into(),
        file_bytes: lab.size,
        experiments: vec![Experiment {
            name: format!(
                "A pointer-chasing victim (1 MiB, one random cycle) on CPU 0 beside {:.1} s of transfers on CPU 0",
                PHASE.as_secs_f64()
            ),
            columns: ["beside", "moved", "M loads / CPU s", "loss %", "loads lost / MiB"].map(String::from).to_vec(),
            rows,
            chart: Some(2),
            label_columns: 1,
            under: None,
        }],
        claims,
        notes: {
            let mut n = vec![
                "the victim counts per second of its own CPU time (CLOCK_THREAD_CPUTIME_ID): sharing the core does not count"
                    .to_string(),
            ];
            if asked < lab.size {
                n.push(format!(
                    "each transfer moved {} rather than the {} asked for, so that moving data, not starting processes, fills the time",
                    bytes(lab.size),
                    bytes(asked)
                ));
            }
            n
        },
    })
}
