# Shared by the benchmark scripts (sourced, not run): builds zclab, makes a
# lab environment and a file of random bytes, and removes both on exit,
# failure or Ctrl-C.
#   bench_setup NAME MIB [env up options...]   sets $zclab, $work, $work/file

bench_setup() {
    local name=$1 mib=$2
    shift 2
    command -v python3 >/dev/null || { echo "$0: needs python3 for the medians" >&2; exit 1; }
    cargo build --release --locked -q
    zclab=target/release/zclab
    env_name=$name
    work=$(mktemp -d /var/tmp/zclab-bench.XXXXXX)
    env_made=0
    trap bench_cleanup EXIT
    trap 'exit 130' INT TERM
    "$zclab" env up --name "$env_name" "$@" >/dev/null 2>&1
    env_made=1
    head -c "$((mib * 1024 * 1024))" /dev/urandom > "$work/file"
    sync "$work/file"   # let writeback finish before anything is timed
    # The receiver preallocates its output (recv --preallocate) unless PREALLOCATE=0:
    # fresh page-cache pages are erratic on this VM (see README).
    prealloc=()
    [ "${PREALLOCATE:-1}" = 1 ] && prealloc=(--preallocate)
    return 0
}

bench_cleanup() {
    trap - EXIT INT TERM
    if [ "$env_made" = 1 ]; then "$zclab" env down --name "$env_name" >/dev/null 2>&1 || true; fi
    rm -rf "$work"
}
