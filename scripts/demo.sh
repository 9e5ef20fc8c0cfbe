#!/usr/bin/env bash
# The main job: build, bring a lab environment up, make a 256 MiB file of
# random bytes, move it by every data path, print the comparison table,
# and bring the environment down again (also on failure or Ctrl-C).
#
# Then `zclab bench` runs every mode three times more, interleaved, beside iperf3
# and the machine's ceilings (memcpy, O_DIRECT reads), for the
# charts (report.html, gbit.svg, cpu.svg), kept in ./zclab-demo-report.
#
#   scripts/demo.sh                 # 256 MiB
#   ZCLAB_DEMO_MIB=1024 scripts/demo.sh
#   ZCLAB_DEMO_OUT=DIR scripts/demo.sh   # the charts elsewhere
set -o errexit -o nounset -o pipefail
cd "$(dirname "$0")/.."

mib=${ZCLAB_DEMO_MIB:-256}
env_name=${ZCLAB_DEMO_ENV:-zclab-demo}
modes=(read-write mmap-write sendfile splice msg-zerocopy io-uring-zc udp-gso af-xdp)

scripts/setup.sh
cargo build --release --locked
zclab=target/release/zclab

work=$(mktemp -d /var/tmp/zclab-demo.XXXXXX)
env_made=0
cleanup() {
    status=$?
    trap - EXIT INT TERM
    if [ "$env_made" = 1 ]; then "$zclab" env down --name "$env_name" || true; fi
    rm -rf "$work"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== zclab env up --name $env_name"
"$zclab" env up --name "$env_name"
env_made=1

echo "== a file of ${mib} MiB random bytes"
head -c "$((mib * 1024 * 1024))" /dev/urandom > "$work/file"
sync "$work/file"  # let writeback finish so it does not run during the timed transfers

# --preallocate: the receiver writes its output file's pages once before
# the timed part. On a VM, the kernel allocating fresh page-cache pages
# costs 1-4x the transfer itself and varies wildly; without this the table
# mostly measures that (try it: PREALLOCATE=0 scripts/demo.sh).
prealloc=()
[ "${PREALLOCATE:-1}" = 1 ] && prealloc=(--preallocate)

# --trace: both ends count what the kernel did (tracepoints), which gives the
# table its kcopies/B column. TRACE=0 leaves it out.
trace=()
[ "${TRACE:-1}" = 1 ] && trace=(--trace)

# One transfer first, not shown: the first run after boot or a big new file
# pays for memory the kernel touches for the first time, and that is not
# the data path's cost.
echo "== warm-up transfer (not shown)"
"$zclab" run --env "$env_name" --mode splice --file "$work/file" --json > /dev/null

failed=0
for m in "${modes[@]}"; do
    echo "== zclab run --mode $m"
    if "$zclab" run --env "$env_name" --mode "$m" --file "$work/file" "${prealloc[@]}" "${trace[@]}" --json > "$work/$m.json"; then
        echo "   verified"
    else
        echo "   !!! $m did not verify" >&2
        failed=1
    fi
done

echo
echo "== comparison (${mib} MiB, warm page cache, ${prealloc[*]:-no preallocation} ${trace[*]}, one run each; see README for medians)"
reports=()
for m in "${modes[@]}"; do [ -s "$work/$m.json" ] && reports+=("$work/$m.json"); done
"$zclab" compare "${reports[@]}" || failed=1

out=${ZCLAB_DEMO_OUT:-zclab-demo-report}
echo
echo "== zclab bench: every mode 3 times, interleaved, for the charts (medians and ranges)"
"$zclab" bench --env "$env_name" --size "${mib}M" --runs 3 --peers --ceilings --out "$out" || failed=1
echo "   open $out/report.html to see the charts"
exit "$failed"
