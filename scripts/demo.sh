#!/usr/bin/env bash
# The main job: install what is missing, build, bring a lab environment up,
# and let `zclab bench` make a file of random bytes and move it by every
# data path, three times each, interleaved (A B C ... A B C ...), beside
# iperf3 and the machine's ceilings (memcpy, O_DIRECT reads, AF_XDP
# frames only), with the kernel's own counters (--trace); then small
# messages (--latency): 64-byte messages one way by udp, udp-mmsg and
# af-xdp, and round trips by tcp, udp and af-xdp, blocking, spinning and
# busy polling, beside sockperf. It prints the tables and writes the charts
# and report.html into ./zclab-demo-report. The environment goes down at
# the end, also on failure or Ctrl-C.
#
#   scripts/demo.sh                       # 256 MiB, about three minutes here
#   ZCLAB_DEMO_MIB=1024 scripts/demo.sh   # a larger file
#   ZCLAB_DEMO_OUT=DIR scripts/demo.sh    # the report elsewhere
#   TRACE=0 scripts/demo.sh               # without the kernel's counters
set -o errexit -o nounset -o pipefail
cd "$(dirname "$0")/.."

mib=${ZCLAB_DEMO_MIB:-256}
env_name=${ZCLAB_DEMO_ENV:-zclab-demo}
out=${ZCLAB_DEMO_OUT:-zclab-demo-report}

scripts/setup.sh
cargo build --release --locked
zclab=target/release/zclab

env_made=0
cleanup() {
    status=$?
    trap - EXIT INT TERM
    if [ "$env_made" = 1 ]; then "$zclab" env down --name "$env_name" || true; fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== zclab env up --name $env_name"
"$zclab" env up --name "$env_name"
env_made=1

# --trace: both ends count what the kernel did (tracepoints): the report's
# "kernel copies per byte". The bench preallocates the receiver's output
# (see docs/numbers.md, "The receiver's page cache"), pins the sender to CPU 0 and the
# receiver to CPU 1, and runs a first round of every mode that it does not count.
trace=()
[ "${TRACE:-1}" = 1 ] && trace=(--trace)

echo
echo "== zclab bench: a ${mib} MiB file, every mode 3 times, interleaved, beside iperf3 and the ceilings"
echo "   (af-xdp twice: into the receiver's page cache, and with recv --direct, O_DIRECT from the UMEM);"
echo "   sendfile twice: as it is, and with an XDP program on the receiving veth (no GSO, the segments of af-xdp-tcp);"
echo "   sendfile and af-xdp-tcp into zclab's own TCP receiver too (tcp-rx: both ends in user space for af-xdp-tcp);"
echo "   curl downloading the file from zclab http (af-xdp-tcp and sendfile) and nginx; then small messages"
echo "   (rate and round trips), beside sockperf"
"$zclab" bench --env "$env_name" --size "${mib}M" --runs 3 --peers --ceilings --direct --http "${trace[@]}" \
    --latency --latency-count 5000 --rate-seconds 1 --out "$out"
echo "   open $out/report.html to see the charts"
