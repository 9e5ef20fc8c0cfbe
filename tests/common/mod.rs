//! Helpers shared by the integration tests: the privilege gate, unique lab
//! environments, files of random bytes, and running the real binary.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use zclab::netns::{EnvConfig, LabEnv};

/// True if this test may use root; otherwise prints why it skips. With
/// ZCLAB_PRIVILEGED_TESTS=1 a missing privilege is a failure, not a skip.
pub fn privileged(test: &str) -> bool {
    if zclab::sys::geteuid() == 0 {
        return true;
    }
    if std::env::var("ZCLAB_PRIVILEGED_TESTS").as_deref() == Ok("1") {
        panic!("{test} needs root, and ZCLAB_PRIVILEGED_TESTS=1 says it must run");
    }
    eprintln!(
        "SKIPPED {test}: needs root (namespaces, veth); run as root, or set ZCLAB_PRIVILEGED_TESTS=1 to make this a failure"
    );
    false
}

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A name no other test (or test process) uses: z + pid + sequence.
pub fn unique_name() -> String {
    format!("z{:x}{}", std::process::id() & 0xffffff, SEQ.fetch_add(1, Ordering::SeqCst))
}

/// A fresh lab environment, removed when dropped.
pub fn env() -> LabEnv {
    env_with(None)
}

pub fn env_with(mtu: Option<u32>) -> LabEnv {
    LabEnv::up(&EnvConfig { name: unique_name(), mtu, queues: None, router: None, ipv6: false, verbose: false }).expect("env up")
}

/// A fresh environment whose veth ends have `queues` queues (`env up --queues N`).
pub fn env_queues(queues: u32, mtu: Option<u32>) -> LabEnv {
    LabEnv::up(&EnvConfig { name: unique_name(), mtu, queues: Some(queues), router: None, ipv6: false, verbose: false })
        .expect("env up")
}

/// A fresh environment whose ends have IPv6 addresses too (`env up --ipv6`).
pub fn env_v6(mtu: Option<u32>) -> LabEnv {
    LabEnv::up(&EnvConfig { name: unique_name(), mtu, queues: None, router: None, ipv6: true, verbose: false }).expect("env up")
}

/// A fresh routed environment (`env up --router --ipv6`): the ends keep their
/// addresses, IPv4 and IPv6, and a third namespace forwards between them.
pub fn env_routed_v6() -> LabEnv {
    let router = Some(zclab::netns::Router { loss_pct: 0.0, rate: None });
    LabEnv::up(&EnvConfig { name: unique_name(), mtu: None, queues: None, router, ipv6: true, verbose: false }).expect("env up")
}

/// A routed environment (NAME-tx, NAME-rt, NAME-rx) whose router drops `pct` percent of
/// the TCP segments to and from `port`, each way, at random (nft `numgen`; the lab's
/// `--loss` takes UDP only). Its `drops()` reads the router's counts (to the port, from it).
pub struct LossyRouter {
    pub env: LabEnv,
    pub names: zclab::netns::EnvNames,
}

impl LossyRouter {
    pub fn up(port: u16, pct: u32) -> LossyRouter {
        let router = Some(zclab::netns::Router { loss_pct: 0.0, rate: None });
        let env = LabEnv::up(&EnvConfig { name: unique_name(), mtu: None, queues: None, router, ipv6: false, verbose: false })
            .expect("env up");
        let names = env.names().clone();
        let r = LossyRouter { env, names };
        r.nft("add table inet zcl");
        r.nft("add chain inet zcl lose { type filter hook forward priority 0 ; }");
        r.nft(&format!("add rule inet zcl lose tcp dport {port} numgen random mod 100 < {pct} counter drop"));
        r.nft(&format!("add rule inet zcl lose tcp sport {port} numgen random mod 100 < {pct} counter drop"));
        r
    }

    /// `nft ARGS` in the router's namespace; its output.
    pub fn nft(&self, args: &str) -> String {
        let o = Command::new("ip").args(["netns", "exec", &self.names.rt_ns, "nft"]).args(args.split(' ')).output().unwrap();
        assert!(o.status.success(), "nft {args}: {}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Segments the router dropped so far: (to the port, from it).
    pub fn drops(&self) -> (u64, u64) {
        let rules = self.nft("list chain inet zcl lose");
        let count = |dir: &str| {
            rules
                .lines()
                .find(|l| l.contains(dir))
                .and_then(|l| l.split("packets ").nth(1)?.split_whitespace().next()?.parse().ok())
                .unwrap_or(0)
        };
        (count("dport"), count("sport"))
    }

    /// The sender's kernel sends MSS segments, not super-packets of up to 64 KiB, so the
    /// router's percent is a percent of segments.
    pub fn no_gso_on_sender(&self) {
        let o = Command::new("ip")
            .args(["netns", "exec", &self.names.tx_ns, "ethtool", "-K", &self.names.tx_if, "tso", "off", "gso", "off"])
            .output()
            .unwrap();
        assert!(o.status.success(), "ethtool: {}", String::from_utf8_lossy(&o.stderr));
    }
}

/// A scratch directory, removed when dropped.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new() -> Scratch {
        let p = std::env::temp_dir().join(format!("zclab-test-{}", unique_name()));
        std::fs::create_dir_all(&p).unwrap();
        Scratch(p)
    }
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes `len` bytes from a seeded xorshift generator (different per seed).
pub fn random_file(path: &Path, len: usize, seed: u64) {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut data = Vec::with_capacity(len + 8);
    while data.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        data.extend_from_slice(&x.to_le_bytes());
    }
    data.truncate(len);
    std::fs::write(path, data).unwrap();
}

/// The zclab binary; the runs it keeps for `zclab explain` go to a directory of the tests'.
pub fn zclab() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_zclab"));
    c.env("ZCLAB_STATE_DIR", std::env::temp_dir().join("zclab-test-state"));
    c
}

pub fn run_zclab(args: &[&str]) -> Output {
    zclab().args(args).output().expect("zclab runs")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\nstderr: {}", String::from_utf8_lossy(&o.stdout), stderr(o)))
}

/// Files in `dir` (to check that nothing partial was left behind).
pub fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

/// A child zclab that is killed and reaped if the test ends without
/// waiting for it (a failed assertion): a panicking test leaves no process.
pub struct Reaped(Option<std::process::Child>);

impl Reaped {
    pub fn new(c: std::process::Child) -> Reaped {
        Reaped(Some(c))
    }

    /// Waits for it and collects its output (as `Child::wait_with_output`).
    pub fn wait_with_output(mut self) -> std::io::Result<Output> {
        self.0.take().expect("not waited for yet").wait_with_output()
    }
}

impl std::ops::Deref for Reaped {
    type Target = std::process::Child;
    fn deref(&self) -> &std::process::Child {
        self.0.as_ref().expect("not waited for yet")
    }
}

impl std::ops::DerefMut for Reaped {
    fn deref_mut(&mut self) -> &mut std::process::Child {
        self.0.as_mut().expect("not waited for yet")
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Starts `zclab recv --netns NS --listen LISTEN --out OUT EXTRA...` with
/// its output captured (`wait_with_output` collects it).
pub fn spawn_recv(ns: &str, listen: &str, out: &Path, extra: &[&str]) -> Reaped {
    zclab()
        .args(["recv", "--netns", ns, "--listen", listen, "--out", out.to_str().unwrap()])
        .args(extra)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map(Reaped::new)
        .expect("zclab recv starts")
}

/// Starts a receiver of the lab env (`zclab recv` in NS at 10.77.0.2:7777) whose output is not needed.
pub fn spawn_quiet_recv(ns: &str, out: &Path) -> Reaped {
    zclab()
        .args(["recv", "--netns", ns, "--listen", "10.77.0.2:7777", "--out", out.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map(Reaped::new)
        .expect("zclab recv starts")
}

/// Starts a sender of the lab env (`zclab send` in NS to 10.77.0.2:7777), stdout discarded.
pub fn spawn_send(ns: &str, mode: &str, file: &Path, extra: &[&str], stderr: std::process::Stdio) -> Reaped {
    zclab()
        .args(["send", "--netns", ns, "--to", "10.77.0.2:7777", "--mode", mode, "--file", file.to_str().unwrap()])
        .args(extra)
        .stdout(std::process::Stdio::null())
        .stderr(stderr)
        .spawn()
        .map(Reaped::new)
        .expect("zclab send starts")
}

/// Runs `zclab send --netns NS --to TO --mode MODE --file FILE EXTRA...`.
pub fn send(ns: &str, to: &str, mode: &str, file: &Path, extra: &[&str]) -> Output {
    zclab()
        .args(["send", "--netns", ns, "--to", to, "--mode", mode, "--file", file.to_str().unwrap()])
        .args(extra)
        .output()
        .expect("zclab send runs")
}

/// Connects to a receiver that may still be starting (retries for 10 s).
pub fn connect_retry(to: std::net::SocketAddr) -> std::net::TcpStream {
    let start = std::time::Instant::now();
    loop {
        match std::net::TcpStream::connect(to) {
            Ok(s) => return s,
            Err(_) if start.elapsed() < std::time::Duration::from_secs(10) => {
                std::thread::sleep(std::time::Duration::from_millis(20))
            }
            Err(e) => panic!("receiver never listened at {to}: {e}"),
        }
    }
}

/// Three namespaces made by hand: A -- R -- B, R forwarding. Removed on drop.
pub struct Routed {
    pub ns: [String; 3],
}

impl Routed {
    pub fn up() -> Routed {
        let base = unique_name();
        let ns = [format!("{base}a"), format!("{base}r"), format!("{base}b")];
        let r = Routed { ns: ns.clone() };
        let ip = |args: &[&str]| {
            let o = std::process::Command::new("ip").args(args).output().unwrap();
            assert!(o.status.success(), "ip {}: {}", args.join(" "), String::from_utf8_lossy(&o.stderr));
        };
        let [a, rt, b] = [&ns[0], &ns[1], &ns[2]];
        for n in &ns {
            ip(&["netns", "add", n]);
            ip(&["-n", n, "link", "set", "lo", "up"]);
        }
        ip(&["-n", a, "link", "add", "a0", "type", "veth", "peer", "name", "r0", "netns", rt]);
        ip(&["-n", b, "link", "add", "b0", "type", "veth", "peer", "name", "r1", "netns", rt]);
        for (n, dev, addr) in
            [(a, "a0", "10.78.1.1/24"), (rt, "r0", "10.78.1.254/24"), (rt, "r1", "10.78.2.254/24"), (b, "b0", "10.78.2.1/24")]
        {
            ip(&["-n", n, "addr", "add", addr, "dev", dev]);
            ip(&["-n", n, "link", "set", dev, "up"]);
        }
        ip(&["-n", a, "route", "add", "default", "via", "10.78.1.254"]);
        ip(&["-n", b, "route", "add", "default", "via", "10.78.2.254"]);
        let o = std::process::Command::new("ip")
            .args(["netns", "exec", rt, "sysctl", "-qw", "net.ipv4.ip_forward=1"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        r
    }
}

impl Drop for Routed {
    fn drop(&mut self) {
        for n in &self.ns {
            let _ = std::process::Command::new("ip").args(["netns", "delete", n]).output();
        }
    }
}

/// A lab packet's UDP payload, as a hand-made sender sends it: the lab
/// header (transfer, offset, length) and the payload.
pub fn lab_packet(id: u32, offset: u64, payload: &[u8]) -> Vec<u8> {
    let mut v = zclab::wire::LabHeader { transfer_id: id, offset, len: payload.len() as u32, flags: 0 }.to_bytes().to_vec();
    v.extend_from_slice(payload);
    v
}

/// A hand-made sender's wait for the receiver's answer to a RoundDone: the
/// progress reports a receiver may send at any time (every quarter window,
/// or 2 ms after it took packets) are skipped, as the real sender skips them.
pub fn answer_to_round(ctrl: &std::net::TcpStream, wd: &mut zclab::transfer::Watchdog) -> Option<zclab::transfer::control::Msg> {
    loop {
        match zclab::transfer::control::recv_msg(&mut &*ctrl, wd).unwrap() {
            Some(zclab::transfer::control::Msg::Progress { .. }) => continue,
            other => return other,
        }
    }
}

/// Sends one TCP segment from a raw socket of the calling thread's namespace
/// to `to`, its checksum right or (`bad`) wrong.
pub fn inject(from: std::net::SocketAddr, to: std::net::SocketAddr, seg: &zclab::wire::TcpSegment, bad: bool) {
    use std::os::fd::{FromRawFd, OwnedFd};
    let mut bytes = seg.header_bytes();
    let mut c = zclab::wire::tcp_checksum(from.ip(), to.ip(), &[&bytes]);
    if bad {
        c ^= 0x5a5a;
    }
    bytes[16..18].copy_from_slice(&c.to_be_bytes());
    let std::net::IpAddr::V4(dst) = to.ip() else { panic!("IPv4 only") };
    // SAFETY: socket takes plain integers; the fd is owned at once.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_TCP) };
    assert!(fd >= 0, "a raw socket: {}", std::io::Error::last_os_error());
    // SAFETY: a fresh fd nothing else owns.
    let _sock = unsafe { OwnedFd::from_raw_fd(fd) };
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes(dst.octets()) },
        sin_zero: [0; 8],
    };
    // SAFETY: `bytes` and `sin` are live for the call, their lengths given.
    let n = unsafe {
        libc::sendto(
            fd,
            bytes.as_ptr() as *const libc::c_void,
            bytes.len(),
            0,
            &sin as *const libc::sockaddr_in as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_in>() as u32,
        )
    };
    assert_eq!(n, bytes.len() as isize, "sendto: {}", std::io::Error::last_os_error());
}
