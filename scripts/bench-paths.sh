#!/usr/bin/env bash
# Benchmark (not a test): chosen modes side by side on one environment of a
# chosen MTU, RUNS times each, interleaved; prints medians.
#
#   MTU=9000 COLD=1 RUNS=3 MIB=1024 scripts/bench-paths.sh af-xdp udp-gso splice sendfile
#
# COLD=1 evicts the file from the page cache before every run (--cold).
# PREALLOCATE=0 lets the receiver allocate its page cache inside the timed part.
set -o errexit -o nounset -o pipefail
cd "$(dirname "$0")/.."
mib=${MIB:-1024}
runs=${RUNS:-3}
mtu=${MTU:-1500}
cold=${COLD:-0}
modes=("$@")
[ ${#modes[@]} -gt 0 ] || modes=(splice sendfile udp-gso af-xdp)
source scripts/bench-lib.sh
bench_setup zb$$ "$mib" --mtu "$mtu"
extra=()
[ "$cold" = 1 ] && extra=(--cold)
extra+=("${prealloc[@]}")
"$zclab" run --env "$env_name" --mode splice --file "$work/file" > /dev/null   # warm-up, not counted
for i in $(seq "$runs"); do
    for m in "${modes[@]}"; do
        "$zclab" run --env "$env_name" --mode "$m" --file "$work/file" "${extra[@]}" --json > "$work/$m.$i.json"
    done
done
python3 - "$work" "$runs" "$mib" "$mtu" "$cold" "${modes[@]}" <<'PY'
import json, statistics, sys
work, runs, mib, mtu, cold, modes = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6:]
print(f"medians of {runs} runs, {mib} MiB file, MTU {mtu}, {'cold' if cold == '1' else 'warm'} page cache")
print("| mode | Gbit/s (median) | runs | packets/s | resent | CPU s/GiB | cached after |")
print("|---|---|---|---|---|---|---|")
for m in modes:
    rs = [json.load(open(f"{work}/{m}.{i}.json")) for i in range(1, runs + 1)]
    assert all(r["verified"] for r in rs)
    med = lambda f: statistics.median(f(r) for r in rs)
    pps = med(lambda r: r["packets_per_s"] or 0)
    each = " ".join("%.1f" % r["gbit_per_s"] for r in rs)
    print(f"| {m} | {med(lambda r: r['gbit_per_s']):.2f} | {each} | "
          f"{pps/1e3:.0f} k | {med(lambda r: r['retransmitted_packets'] or 0):.0f} | "
          f"{med(lambda r: (r['sender']['cpu_user_s']+r['sender']['cpu_sys_s']+r['receiver']['cpu_user_s']+r['receiver']['cpu_sys_s'])/(r['bytes']/2**30)):.2f} | "
          f"{med(lambda r: r['source_cached_after_bytes'])/2**20:.0f} MiB |")
PY
