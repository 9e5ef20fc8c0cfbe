//! Both ends of a `latency` or `rate` session in a lab environment: the
//! server in NAME-rx and the client in NAME-tx, each a child `zclab` of its
//! own (so each has its own CPU accounting), as `zclab run` does for files.
//! The client's report holds both ends (the server sends its part over the
//! control connection).

use crate::netns::EnvNames;
use crate::run::Peer;
use anyhow::{bail, Context, Result};
use std::time::{Duration, Instant};

/// Runs `zclab <server_args>` in the environment's receiving namespace and
/// `zclab <client_args>` in its sending one; returns what the client printed.
pub fn run_both(env: &str, mut server_args: Vec<String>, mut client_args: Vec<String>) -> Result<String> {
    let names = EnvNames::new(env)?;
    crate::netns::require_privileges("both ends in a lab environment (it enters its namespaces)")?;
    if !names.is_up() {
        bail!("environment {env:?} is not up: bring it up with `zclab env up --name {env}`");
    }
    server_args.extend(["--netns".into(), names.rx_ns.clone()]);
    client_args.extend(["--netns".into(), names.tx_ns.clone()]);
    let mut server = Peer::spawn("server", &server_args)?;
    let mut client = Peer::spawn("client", &client_args)?;
    let (mut client_done_at, mut server_failed_at) = (None, None);
    loop {
        if crate::interrupt::requested() {
            client.terminate();
            server.terminate();
            client.stop();
            server.stop();
            bail!("interrupted; both ends stopped");
        }
        let (c, s) = (client.poll()?, server.poll()?);
        if c.is_some() && s.is_some() {
            break;
        }
        // A client that ended leaves a server that may wait for nobody: a moment, then stop it.
        if c.is_some() && client_done_at.get_or_insert_with(Instant::now).elapsed() > Duration::from_secs(3) {
            server.stop();
        }
        // A server that failed leaves a client that may try on: it has its own
        // timeouts and verdict, so give it time to say it; then stop it.
        if s.is_some_and(|st| !st.success())
            && server_failed_at.get_or_insert_with(Instant::now).elapsed() > Duration::from_secs(5)
        {
            client.stop();
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = client.output();
    let _ = server.output();
    if out.trim().is_empty() {
        bail!("the client failed before reporting; its error (or the server's) is above");
    }
    Ok(out)
}

/// Reads the client's JSON report.
pub fn parse<T: serde::de::DeserializeOwned>(out: &str) -> Result<T> {
    serde_json::from_str(out).with_context(|| {
        let shown: String = out.chars().take(300).collect();
        format!("the client printed a report this zclab cannot read: {shown}")
    })
}
