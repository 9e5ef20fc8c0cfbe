//! `zclab http`: a small HTTP/1.1 server of one file, on zclab's own TCP
//! (af-xdp-tcp) or on the kernel's (sendfile), for curl to download from.

use anyhow::Result;
use clap::Args;
use std::net::SocketAddr;
use std::path::PathBuf;
use zclab::send;

use super::{enter_netns, print};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum HttpMode {
    /// zclab's own TCP on an AF_XDP socket: passive open, the file from UMEM blocks read by O_DIRECT.
    AfXdpTcp,
    /// The kernel's TCP: the head by write(), the file by sendfile().
    Sendfile,
}

#[derive(Args)]
#[command(after_help = "\
It answers GET / and GET /NAME (the file's own name) with the file (Content-Length, then
the bytes), HEAD with the head alone, 404 for any other path, 405 for other methods, 400
for a request it cannot read or one over 8 KiB, and closes after each response.

Example (in the lab environment):
    zclab http --netns zclab-rx --mode af-xdp-tcp --listen 10.77.0.2:8080 --file /var/tmp/f --requests 1 &
    ip netns exec zclab-tx curl -o /var/tmp/copy http://10.77.0.2:8080/f")]
pub struct HttpArgs {
    /// Which TCP serves.
    #[arg(long, value_enum)]
    pub mode: HttpMode,
    /// The address to listen on, IP:PORT (it must belong to the namespace's interface).
    #[arg(long, value_name = "IP:PORT")]
    pub listen: SocketAddr,
    /// The file to serve.
    #[arg(long, value_name = "PATH")]
    pub file: PathBuf,
    /// Enter this network namespace first (like `ip netns exec`).
    #[arg(long, value_name = "NAMESPACE")]
    pub netns: Option<String>,
    /// Exit after answering N requests (default: serve until Ctrl-C).
    #[arg(long, value_name = "N")]
    pub requests: Option<u32>,
    /// af-xdp-tcp: the interface (default: the one that holds the address).
    #[arg(long, value_name = "IFACE")]
    pub iface: Option<String>,
    /// af-xdp-tcp: who sums each segment's checksum (see `zclab send --help`).
    #[arg(long, value_enum, default_value = "auto", value_name = "WHO")]
    pub tx_checksum: send::af_xdp_tcp::TxChecksum,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn exec(a: HttpArgs) -> Result<bool> {
    if !a.file.is_file() {
        anyhow::bail!("{} is not a file", a.file.display());
    }
    enter_netns(&a.netns)?;
    match a.mode {
        HttpMode::AfXdpTcp => {
            let opts = send::af_xdp_tcp::TcpXdpOptions { iface: a.iface, tx_checksum: a.tx_checksum, ..Default::default() };
            let rep = send::af_xdp_tcp::serve_http(a.listen, &a.file, &opts, a.requests)?;
            print(a.json, &rep, |r| r.text());
            Ok(rep.served.iter().all(|s| s.error.is_none()))
        }
        HttpMode::Sendfile => {
            let rep = send::sendfile::serve_http(a.listen, &a.file, a.requests)?;
            print(a.json, &rep, |r| r.text());
            Ok(rep.served.iter().all(|s| s.error.is_none()))
        }
    }
}
