//! `--peers`: a tool people already know, on the same environment and the
//! same file: iperf3 sending the file (`-F`) and, with `-Z`, by sendfile.
//! (Note: iperf3 `-Z -F` reads the file into a temporary file of its own
//! and sendfile()s from that, so it is not quite zclab's sendfile path.)

use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One iperf3 run.
#[derive(Debug, Clone, Serialize)]
pub struct PeerRun {
    pub name: String,
    pub round: u32,
    pub gbit_per_s: f64,
}

/// The two peers: name and whether iperf3 gets `-Z`.
pub const PEERS: [(&str, bool); 2] = [("iperf3 -F", false), ("iperf3 -Z -F", true)];

/// A one-off iperf3 server in the receiving namespace, stopped on drop.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Sends `file` with iperf3 from `tx_ns` to a one-off server in `rx_ns` on `port`; Gbit/s.
/// With `pin`, the client runs on CPU 0 and the server on CPU 1 (`-A`), as zclab's ends do.
pub fn iperf3(rx_ns: &str, tx_ns: &str, port: u16, file: &Path, zerocopy: bool, pin: bool) -> Result<f64> {
    let port = port.to_string();
    let mut server = Command::new("ip");
    server.args(["netns", "exec", rx_ns, "iperf3", "-s", "-1", "-B", &crate::netns::RX_ADDR.to_string(), "-p", &port]);
    if pin {
        server.args(["-A", "1"]);
    }
    let server = server
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting iperf3 (install it: scripts/setup.sh, or apt-get install iperf3)")?;
    let _server = Server(server);
    let start = Instant::now();
    loop {
        crate::interrupt::check()?;
        let mut c = Command::new("ip");
        c.args(["netns", "exec", tx_ns, "iperf3", "-c", &crate::netns::RX_ADDR.to_string(), "-p", &port, "-J", "-F"]).arg(file);
        if zerocopy {
            c.arg("-Z");
        }
        if pin {
            c.args(["-A", "0"]);
        }
        let o = c.output().context("running the iperf3 client")?;
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
        if let Some(bps) = v["end"]["sum_sent"]["bits_per_second"].as_f64() {
            return Ok(bps / 1e9);
        }
        let err = v["error"].as_str().unwrap_or("no JSON from iperf3").to_string();
        if start.elapsed() > Duration::from_secs(3) || !err.contains("connect") {
            bail!("iperf3 failed: {err}");
        }
        std::thread::sleep(Duration::from_millis(50)); // the server is still starting
    }
}
