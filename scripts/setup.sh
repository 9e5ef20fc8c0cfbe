#!/usr/bin/env bash
# Installs the system packages zclab needs, only those that are missing.
#   iproute2    `ip`: namespaces, veth pairs, addresses (zclab env)
#   util-linux  `setpriv`: the tests run zclab as an unprivileged user once
#   procps      `sysctl`: the routed af-xdp test turns on forwarding in its router namespace
#   clang, libbpf-dev, linux-libc-dev: compile the BPF programs in xdp-prog/
#   bpftool     makes vmlinux.h from the kernel's BTF for the tracing programs (--trace);
#               the tests also list loaded BPF programs with it
#   nftables    the trace test drops packets in a router namespace on purpose
#   ethtool     lesson 4 turns scatter-gather of the lab's veth off and on
#   iperf3      zclab bench --peers runs it beside zclab's file paths
#   sockperf    zclab bench --latency --peers runs its ping-pong beside zclab latency
#   chromium, fonts-dejavu-core: a test renders the bench's report.html headless and
#               looks at the screenshot
#   socat       a TCP listener for `zclab send --plain` (the example in `zclab send --help`)
#   curl        the HTTP client that tests zclab http (both TCPs)
#   tcpdump     judges the checksums of af-xdp-tcp's segments on the receiving side (a test)
#   nginx       the third server of `zclab bench --http` (sendfile on), beside zclab http
set -o errexit -o nounset -o pipefail

packages=(iproute2 util-linux procps clang libbpf-dev linux-libc-dev bpftool nftables ethtool iperf3 sockperf chromium fonts-dejavu-core socat curl tcpdump nginx)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
    echo "setup: all system packages present (${packages[*]})"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing packages: ${missing[*]}; run this script as root (it uses apt-get)" >&2
    exit 1
fi
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "setup: done"
