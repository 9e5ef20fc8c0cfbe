//! `--http`: the "HTTP download" section. curl, in the receiving namespace,
//! downloads the bench's file from three servers in the sending namespace,
//! one after another in each round: `zclab http --mode af-xdp-tcp` (zclab's
//! own TCP on AF_XDP), `zclab http --mode sendfile` (the same server on the
//! kernel's TCP) and nginx with `sendfile on` (Debian's, on a config of the
//! bench's own, stopped after each run). The same client for all three, so
//! the servers are compared with the client's costs alike; each download is
//! compared byte for byte with the file.

use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The servers, in the order a round runs them.
pub const SERVERS: [Server; 3] = [Server::ZclabAfXdpTcp, Server::ZclabSendfile, Server::Nginx];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Server {
    ZclabAfXdpTcp,
    ZclabSendfile,
    Nginx,
}

impl Server {
    pub fn name(self) -> &'static str {
        match self {
            Server::ZclabAfXdpTcp => "zclab http af-xdp-tcp",
            Server::ZclabSendfile => "zclab http sendfile",
            Server::Nginx => "nginx (sendfile on)",
        }
    }
}

/// One download.
#[derive(Debug, Clone, Serialize)]
pub struct HttpRun {
    pub server: Server,
    pub round: u32,
    pub bytes: u64,
    pub seconds: f64,
    pub gbit_per_s: f64,
    /// The downloaded copy is the file, byte for byte.
    pub verified: bool,
}

/// A server process, stopped (SIGTERM, then killed) on drop; its folder removed.
struct Running {
    child: Child,
    dir: Option<PathBuf>,
}

impl Running {
    /// What the server said of itself, for an error: whether it still runs, and nginx's error log.
    fn why(&mut self, ns: &str, port: u16) -> String {
        let mut s = match self.child.try_wait() {
            Ok(Some(st)) => format!("; the server had exited ({st})"),
            _ => "; the server was still running".to_string(),
        };
        // Who holds the port in the server's namespace, if anyone does.
        let ss = Command::new("ip").args(["netns", "exec", ns, "ss", "-Htanp", &format!("sport = :{port}")]).output();
        if let Some(o) = ss.ok().filter(|o| !o.stdout.is_empty()) {
            s += &format!("; on port {port} there: {}", String::from_utf8_lossy(&o.stdout).trim().replace('\n', " | "));
        }
        for f in ["stderr.log", "error.log"] {
            if let Some(log) = self.dir.as_ref().and_then(|d| std::fs::read_to_string(d.join(f)).ok()).filter(|l| !l.is_empty()) {
                let tail: Vec<&str> = log.lines().rev().take(5).collect();
                s += &format!("; its {f}: {}", tail.into_iter().rev().collect::<Vec<_>>().join(" | "));
            }
        }
        s
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = crate::sys::kill(self.child.id(), libc::SIGTERM);
            let t = Instant::now();
            while t.elapsed() < Duration::from_secs(2) {
                if self.child.try_wait().ok().flatten().is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        if let Some(d) = &self.dir {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

/// True if nginx is installed (`scripts/setup.sh` installs it).
pub fn nginx_installed() -> bool {
    Command::new("nginx").arg("-v").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

/// `cpu`'s `taskset` prefix for a command run in `ns`, if pinned.
fn in_ns(ns: &str, cpu: Option<usize>) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns]);
    if let Some(n) = cpu {
        c.args(["taskset", "-c", &n.to_string()]);
    }
    c
}

fn start(server: Server, tx_ns: &str, port: u16, file: &Path, out: &Path, cpu: Option<usize>) -> Result<Running> {
    let listen = format!("{}:{port}", crate::netns::TX_ADDR);
    match server {
        Server::ZclabAfXdpTcp | Server::ZclabSendfile => {
            let exe = std::env::current_exe().context("cannot find the zclab executable")?;
            let mode = if server == Server::ZclabSendfile { "sendfile" } else { "af-xdp-tcp" };
            let mut c = in_ns(tx_ns, cpu);
            c.arg(exe).args(["http", "--mode", mode, "--listen", &listen, "--requests", "1", "--file"]).arg(file);
            let child = c.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().context("starting zclab http")?;
            Ok(Running { child, dir: None })
        }
        Server::Nginx => {
            // Absolute paths: nginx takes relative ones from its prefix (-p), not from here
            // (a relative --out gave it a pid path that did not exist, and it exited).
            let dir = std::path::absolute(out.join(format!(".nginx-{}-{port}", std::process::id())))?;
            std::fs::create_dir_all(&dir)?;
            let root = std::path::absolute(file.parent().context("the file has a folder")?)?;
            // Workers as root: the bench's folder need not be readable by www-data.
            let conf = format!(
                "daemon off;\nmaster_process on;\nworker_processes 1;\nuser root;\npid {d}/nginx.pid;\n\
                 error_log {d}/error.log;\nevents {{ worker_connections 64; }}\n\
                 http {{\n  access_log off;\n  sendfile on;\n  tcp_nopush on;\n  default_type application/octet-stream;\n\
                 \x20 client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n\
                 \x20 uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
                 \x20 server {{ listen {listen}; root {r}; }}\n}}\n",
                d = dir.display(),
                r = root.display()
            );
            std::fs::write(dir.join("nginx.conf"), conf)?;
            let mut c = in_ns(tx_ns, cpu);
            c.arg("nginx").arg("-c").arg(dir.join("nginx.conf")).arg("-p").arg(&dir);
            // Its words before the error log is open (a bind that fails) go to a file beside it.
            let said = std::fs::File::create(dir.join("stderr.log"))?;
            let child = c
                .stdout(Stdio::null())
                .stderr(said)
                .spawn()
                .context("starting nginx (install it: scripts/setup.sh, or apt-get install nginx)")?;
            Ok(Running { child, dir: Some(dir) })
        }
    }
}

/// One download of `file` by curl in `rx_ns` from `server` started in `tx_ns` on `port`.
pub fn download(server: Server, (tx_ns, rx_ns): (&str, &str), port: u16, file: &Path, pin: bool, round: u32) -> Result<HttpRun> {
    let out = file.parent().context("the file has a folder")?;
    let copy = out.join(format!(".http-copy-{}", std::process::id()));
    let mut running = start(server, tx_ns, port, file, out, pin.then_some(0))?;
    let name = file.file_name().and_then(|n| n.to_str()).context("the file has a name")?;
    let url = format!("http://{}:{port}/{name}", crate::netns::TX_ADDR);
    let t0 = Instant::now();
    let result = loop {
        crate::interrupt::check()?;
        let mut c = in_ns(rx_ns, pin.then_some(1));
        c.args(["curl", "-sS", "--fail", "-o"]).arg(&copy).args(["-w", "%{time_total} %{size_download}", &url]);
        let o = c.output().context("running curl (install it: scripts/setup.sh, or apt-get install curl)")?;
        if o.status.success() {
            break String::from_utf8_lossy(&o.stdout).into_owned();
        }
        // Refused while the server is still starting (code 7): again, for ten seconds.
        if o.status.code() != Some(7) || t0.elapsed() > Duration::from_secs(10) {
            let _ = std::fs::remove_file(&copy);
            bail!(
                "curl from {} failed: {}{}",
                server.name(),
                String::from_utf8_lossy(&o.stderr).trim(),
                running.why(tx_ns, port)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut it = result.split_whitespace();
    let seconds: f64 = it.next().and_then(|v| v.parse().ok()).context("curl's time_total")?;
    let bytes: u64 = it.next().and_then(|v| v.parse().ok()).context("curl's size_download")?;
    let verified = same_bytes(file, &copy).unwrap_or(false);
    let _ = std::fs::remove_file(&copy);
    Ok(HttpRun { server, round, bytes, seconds, gbit_per_s: bytes as f64 * 8.0 / seconds.max(1e-9) / 1e9, verified })
}

/// True if the two files hold the same bytes.
fn same_bytes(a: &Path, b: &Path) -> std::io::Result<bool> {
    use std::io::Read;
    let (mut fa, mut fb) = (std::fs::File::open(a)?, std::fs::File::open(b)?);
    if fa.metadata()?.len() != fb.metadata()?.len() {
        return Ok(false);
    }
    let (mut ba, mut bb) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    loop {
        let n = fa.read(&mut ba)?;
        if n == 0 {
            return Ok(true);
        }
        fb.read_exact(&mut bb[..n])?;
        if ba[..n] != bb[..n] {
            return Ok(false);
        }
    }
}

/// Each server's median and range, and how many of its downloads were intact.
#[derive(Debug, Clone, Serialize)]
pub struct HttpSummary {
    pub server: String,
    pub gbit_per_s: super::Spread,
    pub verified: usize,
    pub runs: usize,
    /// The file's size.
    pub bytes: u64,
}

pub fn summarize(runs: &[HttpRun]) -> Vec<HttpSummary> {
    SERVERS
        .iter()
        .filter_map(|&s| {
            let mine: Vec<&HttpRun> = runs.iter().filter(|r| r.server == s).collect();
            let g: Vec<f64> = mine.iter().map(|r| r.gbit_per_s).collect();
            super::Spread::of(&g).map(|spread| HttpSummary {
                server: s.name().to_string(),
                gbit_per_s: spread,
                verified: mine.iter().filter(|r| r.verified).count(),
                runs: mine.len(),
                bytes: mine[0].bytes,
            })
        })
        .collect()
}

/// The section's lines in the text report.
pub fn text(rows: &[HttpSummary]) -> String {
    let mut s = format!(
        "\nHTTP download: curl fetching the {} file from each server, same environment (median of runs)\n",
        crate::report::human_bytes(rows.first().map_or(0, |r| r.bytes))
    );
    for r in rows {
        s += &format!(
            "http      {:<24} {:6.2} Gbit/s ({:.2}-{:.2}), intact {}/{}\n",
            r.server, r.gbit_per_s.median, r.gbit_per_s.min, r.gbit_per_s.max, r.verified, r.runs
        );
    }
    s
}
