//! Errors name the cause and the fix, and never hang.

mod common;

use common::*;
use std::process::Stdio;
use std::time::{Duration, Instant};

#[test]
fn missing_file_is_named() {
    let o = run_zclab(&["send", "--mode", "sendfile", "--to", "127.0.0.1:9", "--file", "/nonexistent/zclab-file"]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(e.contains("/nonexistent/zclab-file") && e.contains("No such file"), "{e}");
}

#[test]
fn bad_arguments_are_refused_with_help() {
    let o = run_zclab(&["send", "--mode", "carrier-pigeon", "--to", "127.0.0.1:9", "--file", "/etc/hostname"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("possible values") && stderr(&o).contains("sendfile"), "{}", stderr(&o));
    let o = run_zclab(&["send", "--mode", "splice", "--to", "127.0.0.1:9", "--file", "/etc/hostname", "--chunk", "0"]);
    assert!(stderr(&o).contains("--chunk"), "{}", stderr(&o));
    let o = run_zclab(&["send", "--mode", "splice", "--to", "127.0.0.1:9", "--file", "/etc/hostname", "--cpu", "999"]);
    assert!(stderr(&o).contains("--cpu 999: cannot run there"), "{}", stderr(&o));
    let o = run_zclab(&["run", "--mode", "splice", "--file", "/etc/hostname", "--cpu", "0"]);
    assert!(stderr(&o).contains("use --pin"), "{}", stderr(&o));
}

#[test]
fn run_pin_puts_the_sender_on_cpu_0_and_the_receiver_on_cpu_1() {
    if !privileged("run_pin_puts_the_sender_on_cpu_0_and_the_receiver_on_cpu_1") || zclab::sys::sched::cpus() < 2 {
        return;
    }
    let env = env();
    let dir = Scratch::new();
    let src = dir.path("src");
    random_file(&src, 1 << 20, 31);
    let name = env.names().name.clone();
    let r = json(&run_zclab(&["run", "--env", &name, "--mode", "splice", "--file", src.to_str().unwrap(), "--pin", "--json"]));
    assert_eq!(
        (r["verified"].as_bool(), r["sender_cpu"].as_u64(), r["receiver_cpu"].as_u64()),
        (Some(true), Some(0), Some(1)),
        "{r}"
    );
    let r = json(&run_zclab(&["run", "--env", &name, "--mode", "splice", "--file", src.to_str().unwrap(), "--json"]));
    assert!(r["sender_cpu"].is_null() && r["receiver_cpu"].is_null(), "not pinned unless asked: {r}");
}

#[test]
fn not_root_is_told_to_use_root() {
    if !privileged("not_root_is_told_to_use_root") {
        return;
    }
    // Drop to nobody with no capabilities, as an ordinary user would be. The
    // binary is copied where nobody may run it (the checkout may be under /root).
    use std::os::unix::fs::PermissionsExt;
    let dir = Scratch::new();
    std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o755)).unwrap();
    let exe = dir.path("zclab");
    std::fs::copy(env!("CARGO_BIN_EXE_zclab"), &exe).unwrap();
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
    let o = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all"])
        .arg(&exe)
        .args(["env", "up", "--name", &unique_name()])
        .current_dir("/")
        .output()
        .expect("setpriv (util-linux) runs");
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("needs root"), "{}", stderr(&o));
}

#[test]
fn unreachable_receiver_fails_fast_and_clearly() {
    if !privileged("unreachable_receiver_fails_fast_and_clearly") {
        return;
    }
    let env = env();
    let tx = env.names().tx_ns.clone();
    // Nobody listens on 10.77.0.2:9: refused, retried, then a clear error.
    let t = Instant::now();
    let o = send(&tx, "10.77.0.2:9", "splice", std::path::Path::new("/etc/hostname"), &["--timeout", "2"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(t.elapsed() < Duration::from_secs(8), "took {:?}", t.elapsed());
    assert!(stderr(&o).contains("cannot reach a receiver") && stderr(&o).contains("zclab recv"), "{}", stderr(&o));
    // No host has 10.77.0.3: no answer at all, a timeout, never a hang.
    let t = Instant::now();
    let o = send(&tx, "10.77.0.3:7777", "splice", std::path::Path::new("/etc/hostname"), &["--timeout", "2"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(t.elapsed() < Duration::from_secs(8), "took {:?}", t.elapsed());
    assert!(stderr(&o).contains("cannot reach a receiver"), "{}", stderr(&o));
}

#[test]
fn port_in_use_is_named_and_ctrl_c_stops_a_waiting_receiver() {
    if !privileged("port_in_use_is_named_and_ctrl_c_stops_a_waiting_receiver") {
        return;
    }
    let env = env();
    let dir = Scratch::new();
    let rx = env.names().rx_ns.clone();
    let out = dir.path("out");
    let first = zclab()
        .args(["recv", "--netns", &rx, "--listen", "10.77.0.2:7777", "--out", out.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map(Reaped::new)
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let o = run_zclab(&["recv", "--netns", &rx, "--listen", "10.77.0.2:7777", "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("port 7777") && stderr(&o).contains("in use"), "{}", stderr(&o));
    // An address this namespace does not have.
    let o = run_zclab(&["recv", "--netns", &rx, "--listen", "10.77.0.1:7777", "--out", out.to_str().unwrap()]);
    assert!(stderr(&o).contains("not an address of this host"), "{}", stderr(&o));

    zclab::sys::kill(first.id(), libc::SIGINT).unwrap();
    let t = Instant::now();
    let o = first.wait_with_output().unwrap();
    assert!(t.elapsed() < Duration::from_secs(3), "Ctrl-C took {:?}", t.elapsed());
    assert_eq!(o.status.code(), Some(130), "{}", stderr(&o));
    assert!(files_in(&dir.0).is_empty());
}
