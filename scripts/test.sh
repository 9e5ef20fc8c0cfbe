#!/usr/bin/env bash
# The project's one test command (CI runs exactly this): installs what is
# missing, builds, checks formatting and lints, builds the book, and runs every test,
# privileged ones included (they create and remove their own namespaces).
set -o errexit -o nounset -o pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt clippy

echo "== build"
cargo build --all-targets --locked
echo "== cargo fmt --check"
cargo fmt --check
echo "== cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets --locked -- -D warnings
echo "== scripts/book.sh (the book, into target/book; tests/book.rs checks its chapters and links)"
scripts/book.sh
echo "== cargo test (ZCLAB_PRIVILEGED_TESTS=1)"
ZCLAB_PRIVILEGED_TESTS=1 cargo test --locked
