//! `zclab http` by both TCPs, with curl (a program nobody here wrote) as
//! the client in the other namespace: the file intact, HEAD, 404, and 400
//! for garbage and for a request over 8 KiB.

mod common;

use common::*;
use std::io::{Read, Write};
use std::time::Duration;

fn curl(ns: &str, args: &[&str]) -> std::process::Output {
    std::process::Command::new("ip").args(["netns", "exec", ns, "curl", "-s", "--max-time", "20"]).args(args).output().unwrap()
}

/// Sends `request` raw from namespace `ns` and returns the whole answer.
fn raw(ns: &str, to: &str, request: Vec<u8>) -> String {
    let (ns, to) = (ns.to_string(), to.to_string());
    std::thread::spawn(move || {
        zclab::sys::netns::enter(&ns).unwrap();
        let mut s = connect_retry(to.parse().unwrap());
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(&request).unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    })
    .join()
    .unwrap()
}

#[test]
fn curl_downloads_the_file_intact_from_both_tcps_and_bad_requests_get_their_status() {
    if !privileged("curl_downloads_the_file_intact_from_both_tcps") {
        return;
    }
    let env = env();
    let n = env.names().clone();
    let dir = Scratch::new();
    let src = dir.path("payload.bin");
    random_file(&src, (3 << 20) + 77, 51);
    let want = std::fs::read(&src).unwrap();
    // The kernel's server first: its connections' TIME-WAIT on the port must not keep
    // the af-xdp-tcp server from taking it next.
    for (mode, port) in [("sendfile", "8180"), ("af-xdp-tcp", "8180")] {
        let listen = format!("10.77.0.2:{port}");
        #[rustfmt::skip]
        let server = Reaped::new(
            zclab()
                .args(["http", "--netns", &n.rx_ns, "--mode", mode, "--listen", &listen, "--file", src.to_str().unwrap(), "--requests", "6", "--json"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap(),
        );
        std::thread::sleep(Duration::from_millis(800));
        let url = format!("http://{listen}");
        let out = dir.path(&format!("copy-{mode}"));
        let _ = std::fs::remove_file(&out);
        let o = curl(&n.tx_ns, &["-o", out.to_str().unwrap(), "-w", "%{http_code}", &format!("{url}/payload.bin")]);
        assert_eq!(String::from_utf8_lossy(&o.stdout), "200", "{mode}: {}", String::from_utf8_lossy(&o.stderr));
        assert!(std::fs::read(&out).unwrap() == want, "{mode}: curl got the file's bytes");
        let o = curl(&n.tx_ns, &["-o", out.to_str().unwrap(), &format!("{url}/")]);
        assert!(o.status.success() && std::fs::read(&out).unwrap() == want, "{mode}: GET / too");
        let o = curl(&n.tx_ns, &["-I", &format!("{url}/payload.bin")]);
        let head = String::from_utf8_lossy(&o.stdout);
        assert!(head.starts_with("HTTP/1.1 200") && head.contains(&format!("Content-Length: {}", want.len())), "{mode}: {head}");
        let o = curl(&n.tx_ns, &["-o", "/dev/null", "-w", "%{http_code}", &format!("{url}/elsewhere")]);
        assert_eq!(String::from_utf8_lossy(&o.stdout), "404", "{mode}");
        let answer = raw(&n.tx_ns, &listen, b"NONSENSE\r\n\r\n".to_vec());
        assert!(answer.starts_with("HTTP/1.1 400"), "{mode}: {answer}");
        let mut long = b"GET / HTTP/1.1\r\nX-Long: ".to_vec();
        long.extend(std::iter::repeat_n(b'a', 9000));
        long.extend_from_slice(b"\r\n\r\n");
        let answer = raw(&n.tx_ns, &listen, long);
        assert!(answer.starts_with("HTTP/1.1 400"), "{mode}: a request over 8 KiB: {answer}");
        let r = server.wait_with_output().unwrap();
        assert!(r.status.success(), "{mode}: {}", String::from_utf8_lossy(&r.stderr));
        let rep = json(&r);
        let statuses: Vec<u64> = rep["served"].as_array().unwrap().iter().map(|s| s["status"].as_u64().unwrap()).collect();
        assert_eq!(statuses, vec![200, 200, 200, 404, 400, 400], "{mode}: {rep}");
    }
    let l = std::process::Command::new("ip").args(["-n", &n.rx_ns, "link", "show", "dev", &n.rx_if]).output().unwrap();
    assert!(!String::from_utf8_lossy(&l.stdout).contains("xdp"), "the XDP program went with the server");
}
