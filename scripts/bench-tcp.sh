#!/usr/bin/env bash
# Benchmark (not a test): every TCP mode, RUNS times each, interleaved so
# that drift hits all modes alike; prints the medians, and iperf3's own
# sender on the same environment for comparison (`iperf3 -F` reads the file
# and write()s it; `-Z -F` uses sendfile() from a temporary copy).
#
#   scripts/bench-tcp.sh [FILE_MIB] [RUNS]       (defaults: 1024 MiB, 5 runs)
#   PREALLOCATE=0 scripts/bench-tcp.sh           (receiver allocates page cache while timed)
set -o errexit -o nounset -o pipefail
cd "$(dirname "$0")/.."
mib=${1:-1024}
runs=${2:-5}
modes=(read-write mmap-write sendfile splice msg-zerocopy io-uring-zc)

command -v iperf3 >/dev/null || { apt-get update -qq && apt-get install -y -qq iperf3 >/dev/null; }
source scripts/bench-lib.sh
bench_setup zb$$ "$mib"
cat "$work/file" > /dev/null   # warm

for i in $(seq "$runs"); do
    for m in "${modes[@]}"; do
        "$zclab" run --env "$env_name" --mode "$m" --file "$work/file" "${prealloc[@]}" --json > "$work/$m.$i.json"
    done
    for z in "" "-Z"; do
        ip netns exec "$env_name-rx" iperf3 -s -1 -p 5201 >/dev/null 2>&1 &
        sleep 0.3
        ip netns exec "$env_name-tx" iperf3 -c 10.77.0.2 -p 5201 $z -F "$work/file" -J > "$work/iperf3$z.$i.json" || true
        wait
    done
done

python3 - "$work" "$runs" "$mib" "${modes[@]}" <<'PY'
import json, statistics, sys
work, runs, mib, modes = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]
print(f"medians of {runs} runs, {mib} MiB file, warm cache, receiver preallocated unless PREALLOCATE=0")
print(f"| {'path':<14} | {'Gbit/s median':>13} | {'all runs':<40} | {'snd sys s':>9} | {'syscalls':>8} |")
print(f"|{'-'*16}|{'-'*15}|{'-'*42}|{'-'*11}|{'-'*10}|")
for m in modes:
    rs = [json.load(open(f"{work}/{m}.{i}.json")) for i in range(1, runs + 1)]
    g = [r["gbit_per_s"] for r in rs]
    assert all(r["verified"] for r in rs)
    print(f"| {m:<14} | {statistics.median(g):>13.2f} | {' '.join(f'{x:.1f}' for x in g):<40} | "
          f"{statistics.median(r['sender']['cpu_sys_s'] for r in rs):>9.3f} | {statistics.median(r['sender']['syscalls'] for r in rs):>8.0f} |")
for z, name in [("", "iperf3 -F"), ("-Z", "iperf3 -Z -F")]:
    g = []
    for i in range(1, runs + 1):
        try:
            g.append(json.load(open(f"{work}/iperf3{z}.{i}.json"))["end"]["sum_received"]["bits_per_second"] / 1e9)
        except Exception:
            pass
    if g:
        print(f"| {name:<14} | {statistics.median(g):>13.2f} | {' '.join(f'{x:.1f}' for x in g):<40} | {'':>9} | {'':>8} |")
PY
