#!/usr/bin/env bash
# The book's table of faults (docs/holding-up.md), made from what the fault tests recorded
# (tests/faults.rs writes one line per fault into target/faults/):
#   ZCLAB_PRIVILEGED_TESTS=1 cargo test --test faults   # as root
#   scripts/faults-table.sh            # prints the table
#   scripts/faults-table.sh --write    # replaces the table in docs/holding-up.md
set -o errexit -o nounset -o pipefail
cd "$(dirname "$0")/.."

dir=target/faults
if [ ! -d "$dir" ] || [ -z "$(ls -A "$dir")" ]; then
    echo "no records in $dir: run the fault tests first (ZCLAB_PRIVILEGED_TESTS=1 cargo test --test faults)" >&2
    exit 1
fi
table=$(
    echo "| fault | what zclab did |"
    echo "|---|---|"
    sort "$dir"/* | while IFS=$'\t' read -r fault outcome; do
        printf '| %s | %s |\n' "${fault//|/\\|}" "${outcome//|/\\|}"
    done
)
if [ "${1:-}" != --write ]; then
    echo "$table"
    exit 0
fi
begin='<!-- faults: made by scripts/faults-table.sh from the tests; do not edit by hand -->'
end='<!-- faults: end -->'
page=docs/holding-up.md
grep -qF "$begin" "$page" || { echo "$page has no faults table markers" >&2; exit 1; }
python3 - "$page" "$begin" "$end" "$table" <<'PY'
import sys
page, begin, end, table = sys.argv[1:5]
s = open(page).read()
a = s.index(begin) + len(begin)
b = s.index(end)
open(page, "w").write(s[:a] + "\n" + table + "\n" + s[b:])
PY
echo "$page: faults table written ($(ls "$dir" | wc -l) faults)"
