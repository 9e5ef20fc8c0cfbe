//! `zclab bench`: the matrix interleaves, the outputs are all there and
//! agree, cold runs are cold, and the bench leaves no namespace behind.

mod common;

use common::*;
use serde_json::Value;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Both tests look at every bench namespace on the machine: one at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn bench_namespaces() -> Vec<String> {
    let o = Command::new("ip").args(["netns", "list"]).output().unwrap();
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with("zb") && (n.ends_with("-tx") || n.ends_with("-rx")))
        .map(String::from)
        .collect()
}

#[test]
fn a_small_bench_interleaves_and_writes_every_output() {
    if !privileged("a_small_bench_interleaves_and_writes_every_output") {
        return;
    }
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let before = bench_namespaces();
    let dir = Scratch::new();
    let out = dir.path("out");
    let o = run_zclab(&[
        "bench",
        "--size",
        "4M",
        "--runs",
        "2",
        "--modes",
        "sendfile,read-write",
        "--cache",
        "warm,cold",
        "--ceilings",
        "--out",
        out.to_str().unwrap(),
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let result = json(&o);
    let summaries = &result["summaries"];
    assert_eq!(summaries.as_array().unwrap().len(), 4, "2 modes x 2 cache settings: {summaries}");
    let runs: Value = serde_json::from_slice(&std::fs::read(out.join("runs.json")).unwrap()).unwrap();
    let runs = runs.as_array().unwrap();
    assert_eq!(runs.len(), 8);
    let order: Vec<(&str, &str)> = runs.iter().map(|r| (r["mode"].as_str().unwrap(), r["cache"].as_str().unwrap())).collect();
    assert_eq!(
        &order[..4],
        &[("sendfile", "warm"), ("read-write", "warm"), ("sendfile", "cold"), ("read-write", "cold")],
        "round-robin, not one mode after the other"
    );
    assert_eq!(&order[4..], &order[..4], "and again in the second round");
    for r in runs {
        assert!(r["report"]["verified"].as_bool().unwrap());
        assert!(r["all_cpu_s"].as_f64().unwrap() >= 0.0);
        if r["cache"] == "cold" {
            assert_eq!(r["report"]["source_cached_before_bytes"], 0, "a cold run starts cold: {r}");
        }
    }
    // The summaries are the medians of the runs.
    let s = summaries.as_array().unwrap().iter().find(|s| s["mode"] == "sendfile" && s["cache"] == "warm").unwrap();
    let g: Vec<f64> = runs
        .iter()
        .filter(|r| r["mode"] == "sendfile" && r["cache"] == "warm")
        .map(|r| r["report"]["gbit_per_s"].as_f64().unwrap())
        .collect();
    let median = (g[0] + g[1]) / 2.0;
    assert!((s["gbit_per_s"]["median"].as_f64().unwrap() - median).abs() < 1e-9, "{s}");
    let ceilings: Value =
        serde_json::from_slice(&std::fs::read(out.join("ceilings.json")).unwrap_or_else(|e| panic!("{e}: {:?}", files_in(&out))))
            .unwrap();
    let names: Vec<&str> = ceilings.as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(&names[..2], ["memcpy, one core", "disk, O_DIRECT reads"], "{names:?}");
    assert!(names[2].starts_with("AF_XDP frames only, 1 descriptor, 1448 B payload ("), "{names:?}");
    assert!(names[3].starts_with("AF_XDP frames only, 1 descriptor, 1024 B payload ("), "{names:?}");
    assert!(names[4].starts_with("AF_XDP frames only, 2 descriptors, 1448 B payload ("), "{names:?}");
    assert!(ceilings.as_array().unwrap().iter().all(|c| c["gbit_per_s"].as_f64().unwrap() > 0.0));
    assert!(std::fs::read_to_string(out.join("gbit.svg")).unwrap().contains("stroke-dasharray"), "drawn in the chart");
    let csv = std::fs::read_to_string(out.join("summary.csv")).unwrap();
    assert_eq!(csv.lines().count(), 5, "a header and four rows: {csv}");
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert_eq!(html.matches("<svg").count(), 2, "both charts inline");
    for f in ["gbit.svg", "cpu.svg"] {
        let svg = std::fs::read_to_string(out.join(f)).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("sendfile (cold)"), "{f}");
    }
    assert!(!files_in(&out).iter().any(|f| f.starts_with(".bench-file")), "the bench's file is removed");
    assert_eq!(bench_namespaces(), before, "the bench's own environment is removed");
}

#[test]
fn af_xdp_tcp_gets_a_row_the_kernel_a_baseline_without_gso_and_curl_downloads_from_three_servers() {
    if !privileged("af_xdp_tcp_gets_a_row_the_kernel_a_baseline_without_gso") {
        return;
    }
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let before = bench_namespaces();
    let dir = Scratch::new();
    let out = dir.path("out");
    // --out relative to the working directory, as scripts/demo.sh gives it: nginx must be
    // handed absolute paths (it takes relative ones from its own prefix).
    let o = zclab()
        .current_dir(&dir.0)
        .args(["bench", "--size", "8M", "--runs", "1", "--modes", "sendfile,af-xdp-tcp", "--http", "--out", "out", "--json"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let runs: Value = serde_json::from_slice(&std::fs::read(out.join("runs.json")).unwrap()).unwrap();
    let runs = runs.as_array().unwrap();
    let flag = |r: &Value, k: &str| r[k].as_bool().unwrap_or(false);
    let names: Vec<(&str, bool, bool)> =
        runs.iter().map(|r| (r["mode"].as_str().unwrap(), flag(r, "xdp_rx"), flag(r, "tcp_rx"))).collect();
    assert_eq!(
        names,
        [
            ("sendfile", false, false),
            ("sendfile", true, false),
            ("sendfile", false, true),
            ("af-xdp-tcp", false, false),
            ("af-xdp-tcp", false, true)
        ],
        "{names:?}"
    );
    assert!(runs.iter().all(|r| r["report"]["verified"] == true));
    // Into zclab's TCP receiver: the data came by it (its own part of the report).
    for i in [2, 4] {
        let t = &runs[i]["report"]["receiver_af_xdp_tcp"];
        assert_eq!(t["bytes"], 8u64 << 20, "{t}");
    }
    // The sending veth's own count of packets: with GSO a packet is up to 64 KiB; with an XDP
    // program on the receiving veth the kernel sends MSS-sized ones, as af-xdp-tcp does.
    let sent = |i: usize| runs[i]["report"]["sender_iface"]["tx_packets"].as_u64().unwrap();
    let mss_segments = (8u64 << 20) / 1448;
    assert!(sent(0) < mss_segments / 4, "sendfile with GSO: {} packets", sent(0));
    assert!(sent(1) >= mss_segments * 9 / 10, "sendfile beside an XDP program: {} packets", sent(1));
    assert!(sent(2) >= mss_segments * 9 / 10, "sendfile into zclab's TCP receiver: {} packets", sent(2));
    assert!(sent(3) >= mss_segments * 9 / 10, "af-xdp-tcp: {} packets", sent(3));
    assert_eq!(runs[3]["report"]["packets"], runs[3]["report"]["af_xdp_tcp"]["tcp"]["segments_sent"]);
    // The HTTP section: each server once, each copy intact, in the table, the chart and the page.
    let http: Value = serde_json::from_slice(&std::fs::read(out.join("http.json")).unwrap()).unwrap();
    let servers: Vec<&str> = http.as_array().unwrap().iter().map(|r| r["server"].as_str().unwrap()).collect();
    assert_eq!(servers, ["zclab-af-xdp-tcp", "zclab-sendfile", "nginx"]);
    for r in http.as_array().unwrap() {
        assert_eq!(r["verified"], true, "{r}");
        assert_eq!(r["bytes"], 8u64 << 20, "{r}");
        assert!(r["gbit_per_s"].as_f64().unwrap() > 0.0);
    }
    let svg = std::fs::read_to_string(out.join("http.svg")).unwrap();
    assert!(svg.contains("nginx (sendfile on)") && svg.contains("zclab http af-xdp-tcp"), "{svg}");
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("<h2>HTTP download</h2>") && html.contains("sendfile xdp-rx"));
    let pids = std::process::Command::new("pgrep").args(["-f", "nginx.conf"]).output().unwrap();
    assert!(pids.stdout.is_empty(), "nginx stopped after each run");
    assert!(!files_in(&out).iter().any(|f| f.starts_with(".nginx") || f.starts_with(".http-copy")), "{:?}", files_in(&out));
    assert_eq!(bench_namespaces(), before, "the bench's own environment is removed");
}

#[test]
fn ctrl_c_stops_a_bench_and_leaves_nothing() {
    if !privileged("ctrl_c_stops_a_bench_and_leaves_nothing") {
        return;
    }
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let before = bench_namespaces();
    let dir = Scratch::new();
    let out = dir.path("out");
    let mut child = zclab()
        .args(["bench", "--size", "64M", "--runs", "20", "--modes", "sendfile", "--out", out.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(Reaped::new)
        .unwrap();
    let t = Instant::now();
    while bench_namespaces().len() <= before.len() {
        assert!(t.elapsed() < Duration::from_secs(20), "the bench never made its environment");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(500)); // into the runs
    zclab::sys::kill(child.id(), libc::SIGINT).unwrap();
    let t = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "the bench did not stop on Ctrl-C");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(!status.success());
    assert_eq!(bench_namespaces(), before, "no namespace left behind");
    let left: Vec<String> = if out.exists() { files_in(&out) } else { Vec::new() };
    assert!(!left.iter().any(|f| f.starts_with(".bench-file")), "no file left behind: {left:?}");
}

#[test]
fn sweeps_of_mtu_and_chunk_get_their_environments_and_line_charts() {
    if !privileged("sweeps_of_mtu_and_chunk_get_their_environments_and_line_charts") {
        return;
    }
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let before = bench_namespaces();
    let dir = Scratch::new();
    let out = dir.path("out");
    let o = run_zclab(&[
        "bench",
        "--size",
        "2M",
        "--runs",
        "1",
        "--modes",
        "sendfile",
        "--mtu",
        "1500,9000",
        "--chunk",
        "64K,1M",
        "--out",
        out.to_str().unwrap(),
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let s = json(&o)["summaries"].clone();
    let mut got: Vec<(u64, u64)> =
        s.as_array().unwrap().iter().map(|m| (m["mtu"].as_u64().unwrap(), m["chunk"].as_u64().unwrap())).collect();
    got.sort();
    assert_eq!(got, vec![(1500, 65536), (1500, 1 << 20), (9000, 65536), (9000, 1 << 20)]);
    let runs: Value = serde_json::from_slice(&std::fs::read(out.join("runs.json")).unwrap()).unwrap();
    for r in runs.as_array().unwrap() {
        assert_eq!(r["report"]["chunk_bytes"], r["chunk"], "each run used its chunk: {r}");
    }
    for f in ["sweep-mtu.svg", "sweep-chunk.svg"] {
        let svg = std::fs::read_to_string(out.join(f)).unwrap();
        assert!(svg.contains("<polyline"), "{f} draws lines");
    }
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert_eq!(html.matches("<svg").count(), 4, "two bar charts and two sweeps inline");
    assert_eq!(bench_namespaces(), before, "one environment per MTU, all removed");
    let o = run_zclab(&["bench", "--env", "zclab", "--mtu", "9000", "--out", out.to_str().unwrap()]);
    assert!(!o.status.success() && stderr(&o).contains("--mtu sweeps need environments of the bench's own"), "{}", stderr(&o));
}

#[test]
fn sweeps_of_file_size_and_sends_in_flight_and_fixed_buffers() {
    if !privileged("sweeps_of_file_size_and_sends_in_flight_and_fixed_buffers") {
        return;
    }
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = Scratch::new();
    let out = dir.path("out");
    let o = run_zclab(&[
        "bench",
        "--size",
        "1M,4M",
        "--runs",
        "1",
        "--modes",
        "read-write,msg-zerocopy,io-uring-zc",
        "--in-flight",
        "1,4",
        "--fixed-buffers",
        "--out",
        out.to_str().unwrap(),
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let s = json(&o)["summaries"].clone();
    // Per size: read-write once, msg-zerocopy at 1 and 4, io-uring-zc plain and fixed at 1 and 4.
    assert_eq!(s.as_array().unwrap().len(), 2 * (1 + 2 + 4), "{s}");
    let runs: Value = serde_json::from_slice(&std::fs::read(out.join("runs.json")).unwrap()).unwrap();
    for r in runs.as_array().unwrap() {
        let rep = &r["report"];
        assert!(rep["verified"].as_bool().unwrap(), "{r}");
        assert_eq!(rep["bytes"], r["size"], "each run moved its size's file: {r}");
        match r["mode"].as_str().unwrap() {
            "read-write" => assert!(r["in_flight"].is_null() && rep["zerocopy"].is_null(), "{r}"),
            _ => {
                let z = &rep["zerocopy"];
                assert_eq!(z["in_flight_limit"], r["in_flight"], "the sender used the cell's depth: {r}");
                assert_eq!(z["fixed_buffers"], r["fixed_buffers"], "{r}");
                assert_eq!(z["completions"], z["sends"], "every send completed: {r}");
                if r["fixed_buffers"] == true {
                    assert!(z["register_s"].as_f64().unwrap() > 0.0, "the registration is timed: {r}");
                    // Pinning a private mapping for writing copies every page: one fault each.
                    let pages = rep["bytes"].as_u64().unwrap() / 4096;
                    assert!(rep["sender"]["minor_faults"].as_u64().unwrap() >= pages, "{r}");
                }
                if r["mode"] == "msg-zerocopy" {
                    assert!(z["max_in_flight"].as_u64().unwrap() <= r["in_flight"].as_u64().unwrap(), "the limit held: {r}");
                }
            }
        }
    }
    for f in ["sweep-size.svg", "sweep-in-flight.svg"] {
        let svg = std::fs::read_to_string(out.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
        assert!(svg.contains("<polyline") && svg.contains("io-uring-zc fixed"), "{f}: {svg}");
    }
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert_eq!(html.matches("<svg").count(), 4, "two bar charts and two sweeps inline");
}

/// Pixels of `png` within 8 of `rgb` in every channel.
fn pixels_like(img: &[u8], channels: usize, rgb: [u8; 3]) -> usize {
    img.chunks_exact(channels).filter(|p| (0..3).all(|i| p[i].abs_diff(rgb[i]) <= 8)).count()
}

#[test]
fn the_report_renders_in_chromium_with_every_chart() {
    if !privileged("the_report_renders_in_chromium_with_every_chart") {
        return;
    }
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = Scratch::new();
    let out = dir.path("out");
    let o = run_zclab(&[
        "bench",
        "--size",
        "32M",
        "--runs",
        "1",
        "--modes",
        "sendfile,read-write",
        "--chunk",
        "64K,256K",
        "--ceilings",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let png = dir.path("report.png");
    let shot = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--window-size=1000,4000",
            &format!("--screenshot={}", png.display()),
            &format!("file://{}", out.join("report.html").display()),
        ])
        .output()
        .expect("chromium runs (scripts/setup.sh installs the Debian package)");
    assert!(shot.status.success() && png.exists(), "chromium: {}", String::from_utf8_lossy(&shot.stderr));
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&png).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut img = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut img).unwrap();
    let img = &img[..info.buffer_size()];
    let channels = info.color_type.samples();
    assert!(channels >= 3, "a colour screenshot: {:?}", info.color_type);
    let total = img.len() / channels;
    let white = pixels_like(img, channels, [255, 255, 255]);
    assert!(white < total * 98 / 100, "the page is not blank: {white} of {total} pixels white");
    // Each chart in its own colours: the throughput bars (blue), the CPU
    // bars (green), the ceilings' dashed lines (red), the chunk sweep's
    // second line (brown: no cold bar in this bench).
    for (what, rgb, least) in [
        ("throughput bars", [0x48, 0x78, 0xa8], 1000),
        ("CPU bars", [0x5a, 0x8f, 0x3c], 1000),
        ("ceiling lines", [0xcc, 0x33, 0x33], 20),
        ("sweep lines", [0xa8, 0x64, 0x48], 50),
    ] {
        let n = pixels_like(img, channels, rgb);
        assert!(n >= least, "{what}: {n} pixels of their colour in the screenshot (want {least})");
    }
}

#[test]
fn peers_run_iperf3_on_the_same_environment_and_file() {
    if !privileged("peers_run_iperf3_on_the_same_environment_and_file") {
        return;
    }
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = Scratch::new();
    let out = dir.path("out");
    let o = run_zclab(&[
        "bench",
        "--size",
        "8M",
        "--runs",
        "2",
        "--modes",
        "sendfile",
        "--peers",
        "--out",
        out.to_str().unwrap(),
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r = json(&o);
    let peers = r["peers"].as_array().unwrap();
    assert_eq!(peers.len(), 2, "iperf3 -F and -Z -F: {r}");
    for p in peers {
        assert!(p[1]["median"].as_f64().unwrap() > 0.0, "{p}");
    }
    let runs: Value = serde_json::from_slice(&std::fs::read(out.join("peers.json")).unwrap()).unwrap();
    assert_eq!(runs.as_array().unwrap().len(), 4, "two peers, two rounds");
    assert!(std::fs::read_to_string(out.join("gbit.svg")).unwrap().contains(">iperf3 -Z -F<"));
}

#[test]
fn af_xdp_frame_layouts_and_queues_run_side_by_side() {
    if !privileged("af_xdp_frame_layouts_and_queues_run_side_by_side") {
        return;
    }
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = Scratch::new();
    let out = dir.path("out");
    #[rustfmt::skip]
    let o = run_zclab(&[
        "bench", "--size", "4M", "--runs", "1", "--modes", "af-xdp,udp-gso",
        "--frame-layout", "split,contiguous", "--queues", "1,2", "--direct", "--out", out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(table.contains("| af-xdp split 1q ") && table.contains("| af-xdp contiguous 2q "), "{table}");
    assert!(table.contains("| af-xdp split 2q direct ") && table.contains("cached after (src / rcv)"), "{table}");
    let runs: Value = serde_json::from_slice(&std::fs::read(out.join("runs.json")).unwrap()).unwrap();
    let mut seen = Vec::new();
    for r in runs.as_array().unwrap() {
        assert!(r["report"]["verified"].as_bool().unwrap(), "{r}");
        match r["mode"].as_str().unwrap() {
            "af-xdp" => {
                assert_eq!(r["report"]["af_xdp"]["layout"], r["layout"], "the sender used the cell's layout: {r}");
                let queues = r["report"]["af_xdp"]["sender_queues"].as_array().unwrap().len();
                assert_eq!(Some(queues as u64), r["queues"].as_u64(), "and its queues (the bench's env has two): {r}");
                // --direct: every cell twice, the second with the receiver writing by O_DIRECT, on
                // both queues' threads at once in the 2q cells.
                let d = &r["report"]["direct"];
                if r["direct"] == true {
                    assert_eq!(d["used"], true, "{r}");
                    assert_eq!(d["direct_bytes"], r["report"]["bytes"], "{r}");
                    assert_eq!(r["report"]["out_cached_after_bytes"], 0, "{r}");
                } else {
                    assert!(d.is_null(), "{r}");
                }
                seen.push(format!("{} {}", r["layout"].as_str().unwrap(), r["direct"]));
            }
            _ => assert!(r["layout"].is_null() && r["queues"].is_null(), "layouts and queues are af-xdp's alone: {r}"),
        }
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen, ["contiguous false", "contiguous true", "split false", "split true"]);
    let csv = std::fs::read_to_string(out.join("summary.csv")).unwrap();
    assert!(csv.contains("af-xdp,false,contiguous,2,"), "{csv}");
}

#[test]
fn latency_and_rate_run_side_by_side_beside_sockperf_and_land_in_every_output() {
    if !privileged("latency_and_rate_run_side_by_side_beside_sockperf") {
        return;
    }
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let before = bench_namespaces();
    let dir = Scratch::new();
    let out = dir.path("out");
    let o = run_zclab(&[
        "bench",
        "--modes",
        "none",
        "--latency",
        "--latency-count",
        "300",
        "--rate-seconds",
        "0.2",
        "--runs",
        "2",
        "--peers",
        "--out",
        out.to_str().unwrap(),
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r = json(&o);
    assert!(r["summaries"].as_array().unwrap().is_empty(), "no file path ran");
    let m = &r["messages"];
    let sums = m["summaries"].as_array().unwrap();
    assert_eq!(sums.len(), 14, "5 rate and 9 latency settings: {m}");
    for s in sums {
        assert_eq!(s["runs"], 2, "{s}");
        match s["cell"]["workload"].as_str().unwrap() {
            "rate" => assert!(s["delivered_per_s"]["median"].as_f64().unwrap() > 0.0, "{s}"),
            _ => {
                let (p50, p99) = (s["p50_us"]["median"].as_f64().unwrap(), s["p99_us"]["median"].as_f64().unwrap());
                assert!(0.0 < p50 && p50 <= p99, "{s}");
            }
        }
    }
    let peers = m["peers"].as_array().unwrap();
    assert_eq!(peers.len(), 2, "sockperf over UDP and TCP: {m}");
    for p in peers {
        assert!(p[1]["median"].as_f64().unwrap() > 0.0, "{p}");
    }
    // Every run in runs.json: the 14 settings round by round, then sockperf's runs.
    let runs: Value = serde_json::from_slice(&std::fs::read(out.join("runs.json")).unwrap()).unwrap();
    let cells: Vec<String> = runs.as_array().unwrap().iter().map(|r| format!("{} {}", r["kind"], r["cell"])).collect();
    assert_eq!(cells.len(), 2 * 14 + 4, "{cells:?}");
    assert_eq!(&cells[..14], &cells[14..28], "round-robin, every setting once a round: {cells:?}");
    let rounds: Vec<u64> = runs.as_array().unwrap().iter().map(|r| r["round"].as_u64().unwrap()).collect();
    assert!(rounds[..14].iter().all(|r| *r == 0) && rounds[14..28].iter().all(|r| *r == 1), "{rounds:?}");
    let sp = &runs.as_array().unwrap()[28..];
    assert!(sp.iter().all(|r| r["kind"] == "sockperf" && r["p50_us"].as_f64().unwrap() > 0.0), "{sp:?}");
    // The median in the summary is the median of the two runs.
    let all = runs.as_array().unwrap();
    let udp_block: Vec<f64> = all
        .iter()
        .filter(|r| r["kind"] == "latency" && r["cell"]["mode"] == "udp" && r["cell"]["wait"] == "block")
        .map(|r| r["latency"]["p50_us"].as_f64().unwrap())
        .collect();
    let s = sums
        .iter()
        .find(|s| s["cell"]["workload"] == "latency" && s["cell"]["mode"] == "udp" && s["cell"]["wait"] == "block")
        .unwrap();
    assert!((s["p50_us"]["median"].as_f64().unwrap() - (udp_block[0] + udp_block[1]) / 2.0).abs() < 1e-9, "{s}");
    let csv = std::fs::read_to_string(out.join("summary.csv")).unwrap();
    assert_eq!(csv.lines().count(), 15, "a header and 14 rows: {csv}");
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    assert!(csv.lines().all(|l| l.split(',').count() == header.len()), "every row as wide as the header: {csv}");
    assert!(header.contains(&"p99_us_median") && header.contains(&"delivered_per_s_median"));
    let svg = std::fs::read_to_string(out.join("latency.svg")).unwrap();
    assert_eq!(svg.matches("<polyline").count(), 9, "a line per latency setting");
    assert!(std::fs::read_to_string(out.join("rate.svg")).unwrap().contains(">af-xdp spin<"));
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("<h2>Small messages</h2>") && html.contains("sockperf ping-pong udp"), "the section is in the report");
    assert_eq!(html.matches("<svg").count(), 2, "the rate and the percentile charts inline, no file charts");
    assert_eq!(bench_namespaces(), before, "the bench's own environment is removed");
}
