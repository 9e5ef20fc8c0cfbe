#!/usr/bin/env bash
# Builds the book (docs/, an mdBook) into target/book/, which git ignores.
# Installs mdBook with `cargo install --locked mdbook` when it is missing.
#   scripts/book.sh          build; open target/book/index.html in a browser
#   scripts/book.sh serve    build and serve it on http://127.0.0.1:3000, rebuilt on change
set -o errexit -o nounset -o pipefail
cd "$(dirname "$0")/.."

export PATH="$HOME/.cargo/bin:$PATH"
if ! command -v mdbook >/dev/null 2>&1; then
    echo "book: mdbook is missing; installing it (cargo install --locked mdbook)"
    cargo install --locked mdbook
fi
if [ "${1:-}" = serve ]; then
    exec mdbook serve docs
fi
mdbook build docs
echo "book: target/book/index.html ($(find target/book -name '*.html' | wc -l) pages)"
