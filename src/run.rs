//! `zclab run`: the receiver in NAME-rx and the sender in NAME-tx, each a
//! child process of its own (so each has its own CPU accounting), their
//! JSON reports merged into one result.

use crate::netns::{EnvNames, RX_ADDR, RX_ADDR6};
use crate::report::{RecvReport, RunReport, SendReport};
use crate::transfer::Mode;
use anyhow::{bail, Context, Result};
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A validated `zclab run`.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub env: String,
    pub mode: Mode,
    pub file: PathBuf,
    pub keep: Option<PathBuf>,
    pub port: u16,
    pub chunk: usize,
    pub timeout: Duration,
    pub cold: bool,
    pub preallocate: bool,
    /// Both ends count what the kernel did (`--trace`).
    pub trace: bool,
    /// How the TCP receiver takes the data off the socket.
    pub via: crate::transfer::mode::Via,
    /// The zero-copy send paths' options.
    pub zc: crate::send::ZcOptions,
    /// A key file both ends use (`--key`).
    pub key: Option<PathBuf>,
    /// af-xdp options for (the sender, the receiver), as their arguments.
    pub af_xdp_args: (Vec<String>, Vec<String>),
    /// (sender's CPU, receiver's CPU) to pin the two ends to.
    pub pin: Option<(usize, usize)>,
    /// Over IPv6 (the environment's RX_ADDR6) instead of IPv4.
    pub ipv6: bool,
    /// TCP paths: the receiver takes the data connection by zclab's own TCP
    /// (`recv --mode af-xdp-tcp`).
    pub tcp_receiver: bool,
}

/// The options both ends take alike: --trace, --key, this end's af-xdp
/// options (af-xdp only) and its CPU.
fn end_args(cfg: &RunConfig, args: &mut Vec<String>, af_xdp: &[String], cpu: Option<usize>) {
    if cfg.trace {
        args.push("--trace".into());
    }
    if let Some(k) = &cfg.key {
        args.extend(["--key".into(), path_arg(k)]);
    }
    // af-xdp-tcp's receiver is the kernel's TCP: the options are the sender's only.
    let sender = std::ptr::eq(af_xdp, cfg.af_xdp_args.0.as_slice());
    if cfg.mode == Mode::AfXdp || (cfg.mode == Mode::AfXdpTcp && sender) {
        args.extend(af_xdp.iter().cloned());
    }
    if let Some(c) = cpu {
        args.extend(["--cpu".into(), c.to_string()]);
    }
}

/// A child zclab; on drop, if still running, asked to stop (SIGTERM, so it
/// cleans up), then killed.
pub(crate) struct Peer {
    role: &'static str,
    child: Child,
    stdout: Option<std::thread::JoinHandle<String>>,
    status: Option<ExitStatus>,
    signalled: bool,
}

impl Peer {
    pub(crate) fn spawn(role: &'static str, args: &[String]) -> Result<Peer> {
        let exe = std::env::current_exe().context("cannot find the zclab executable")?;
        log::debug!("spawning {role}: {} {}", exe.display(), args.join(" "));
        // Its own process group: a Ctrl-C at the terminal reaches only
        // `zclab run`, which then asks each end once to stop (SIGTERM).
        let mut child = Command::new(exe)
            .args(args)
            .stdout(Stdio::piped())
            .stdin(Stdio::null())
            .process_group(0)
            .spawn()
            .with_context(|| format!("cannot start the {role}"))?;
        let mut out = child.stdout.take().expect("stdout is piped");
        let stdout = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = out.read_to_string(&mut s);
            s
        });
        Ok(Peer { role, child, stdout: Some(stdout), status: None, signalled: false })
    }

    pub(crate) fn poll(&mut self) -> Result<Option<ExitStatus>> {
        if self.status.is_none() {
            self.status = self.child.try_wait()?;
        }
        Ok(self.status)
    }

    /// Asks it to stop (SIGTERM: it cleans up as after an error). Only
    /// once: a second signal makes zclab exit at once, skipping clean-up.
    pub(crate) fn terminate(&mut self) {
        if self.status.is_none() && !self.signalled {
            self.signalled = true;
            let _ = crate::sys::kill(self.child.id(), libc::SIGTERM);
        }
    }

    /// Asks it to stop, waits up to 3 s, then kills it.
    pub(crate) fn stop(&mut self) {
        if self.status.is_some() {
            return;
        }
        self.terminate();
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(3) {
            if let Ok(Some(s)) = self.child.try_wait() {
                self.status = Some(s);
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        self.status = self.child.wait().ok();
    }

    pub(crate) fn output(&mut self) -> String {
        self.stdout.take().map(|h| h.join().unwrap_or_default()).unwrap_or_default()
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Removes the output file of a run that was not asked to keep it.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Runs one transfer across the environment and merges both reports.
pub fn run(cfg: &RunConfig) -> Result<RunReport> {
    let names = EnvNames::new(&cfg.env)?;
    crate::netns::require_privileges("zclab run (it enters the lab namespaces)")?;
    if !names.is_up() {
        bail!("environment {:?} is not up: bring it up with `zclab env up --name {}`", cfg.env, cfg.env);
    }
    let file =
        std::fs::canonicalize(&cfg.file).with_context(|| format!("cannot open the file to send, {}", cfg.file.display()))?;
    let (out, _scratch) = match &cfg.keep {
        Some(p) => (p.clone(), None),
        None => {
            let p = std::env::temp_dir().join(format!("zclab-run-{}.out", std::process::id()));
            (p.clone(), Some(Scratch(p)))
        }
    };
    let to = if cfg.ipv6 { format!("[{RX_ADDR6}]:{}", cfg.port) } else { format!("{RX_ADDR}:{}", cfg.port) };
    let secs = cfg.timeout.as_secs_f64().to_string();
    let s = |x: &str| x.to_string();
    let mut recv_args = vec![
        s("recv"),
        s("--netns"),
        names.rx_ns.clone(),
        s("--listen"),
        to.clone(),
        s("--out"),
        path_arg(&out),
        s("--json"),
        s("--timeout"),
        secs.clone(),
        s("--accept-timeout"),
        secs.clone(),
    ];
    if cfg.preallocate {
        recv_args.push(s("--preallocate"));
    }
    recv_args.extend([s("--via"), s(cfg.via.name())]);
    if cfg.tcp_receiver {
        recv_args.extend([s("--mode"), s("af-xdp-tcp")]);
    }
    end_args(cfg, &mut recv_args, &cfg.af_xdp_args.1, cfg.pin.map(|p| p.1));
    let mut receiver = Peer::spawn("receiver", &recv_args)?;
    let mut send_args = vec![
        s("send"),
        s("--netns"),
        names.tx_ns.clone(),
        s("--to"),
        to,
        s("--file"),
        path_arg(&file),
        s("--mode"),
        s(cfg.mode.name()),
        s("--chunk"),
        cfg.chunk.to_string(),
        s("--json"),
        s("--timeout"),
        secs,
    ];
    if cfg.cold {
        send_args.push(s("--cold"));
    }
    send_args.extend(cfg.zc.args());
    end_args(cfg, &mut send_args, &cfg.af_xdp_args.0, cfg.pin.map(|p| p.0));
    let mut sender = Peer::spawn("sender", &send_args)?;

    let mut sender_failed_at = None;
    loop {
        if crate::interrupt::requested() {
            sender.terminate();
            receiver.terminate();
            sender.stop();
            receiver.stop();
            bail!("interrupted; both ends stopped");
        }
        let (s_done, r_done) = (sender.poll()?, receiver.poll()?);
        if s_done.is_some() && r_done.is_some() {
            break;
        }
        // A sender that failed leaves a receiver waiting: give it a moment
        // to notice on its own, then stop it.
        if let Some(st) = s_done {
            let at = *sender_failed_at.get_or_insert_with(Instant::now);
            if !st.success() && at.elapsed() > Duration::from_secs(2) {
                receiver.stop();
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let (s_out, r_out) = (sender.output(), receiver.output());
    let s_rep = parse_report::<SendReport>(sender.role, &s_out)?;
    let r_rep = parse_report::<RecvReport>(receiver.role, &r_out)?;
    match (s_rep, r_rep) {
        (Some(s), Some(r)) => {
            let mut merged = RunReport::merge(&s, &r);
            merged.inferred_copies = crate::copies::infer(&merged);
            crate::explain::remember(&merged);
            Ok(merged)
        }
        (s, _) => {
            let who = if s.is_none() { &sender } else { &receiver };
            bail!(
                "the {} failed ({}) before reporting; its error is above",
                who.role,
                who.status.map(|s| s.to_string()).unwrap_or_default()
            );
        }
    }
}

/// One end's JSON report: None if it printed nothing (it failed, and said
/// why on stderr); an error if it printed something that is not a report.
fn parse_report<T: serde::de::DeserializeOwned>(role: &str, out: &str) -> Result<Option<T>> {
    if out.trim().is_empty() {
        return Ok(None);
    }
    serde_json::from_str(out).map(Some).map_err(|e| {
        let shown: String = out.chars().take(300).collect();
        anyhow::anyhow!(
            "the {role} printed a report this zclab cannot read ({e}): is it another version of zclab? It printed: {shown}"
        )
    })
}

/// Writes `len` bytes of pseudo-random data (xorshift) to `path` and syncs
/// them, so that no writeback runs during the transfers that follow (the
/// bench's and the lessons' file).
pub fn make_random_file(path: &Path, len: u64) -> Result<()> {
    use std::io::Write;
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ std::process::id() as u64;
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut block = vec![0u8; 1 << 16];
    let mut left = len;
    while left > 0 {
        crate::interrupt::check()?;
        for w in block.chunks_exact_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            w.copy_from_slice(&x.to_le_bytes());
        }
        let n = left.min(block.len() as u64) as usize;
        f.write_all(&block[..n])?;
        left -= n as u64;
    }
    f.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    Ok(())
}

pub(crate) fn path_arg(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_end_that_printed_nothing_failed_and_one_that_printed_garbage_is_named() {
        assert!(parse_report::<SendReport>("sender", "").unwrap().is_none());
        assert!(parse_report::<SendReport>("sender", " \n").unwrap().is_none());
        let e = parse_report::<RecvReport>("receiver", "{\"mode\": \"sendfile\", \"bytes\": \"many\"}").unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("the receiver printed a report this zclab cannot read"), "{msg}");
        assert!(msg.contains("\"bytes\": \"many\""), "what it printed is shown: {msg}");
    }
}
