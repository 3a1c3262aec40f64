#!/usr/bin/env bash
# Everything CI checks, from a fresh machine: installs what the lab needs
# (OpenSSH server, a venv with Gunicorn, Podman), then formatting, lints, unit
# tests, property tests and the integration tests against a real local lab.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/setup.sh
export HERD_LAB_VENV="$PWD/.venv"
# The container tests must run here, not skip: a machine where Podman cannot
# run fails them (as root; others skip them, saying why).
if [ "$(id -u)" = 0 ]; then export HERD_LAB_REQUIRE_CONTAINERS=1; fi

echo "test: cargo fmt --check" >&2
cargo fmt --check
echo "test: cargo clippy" >&2
cargo clippy --all-targets --quiet -- -D warnings
echo "test: cargo test" >&2
cargo test --quiet --no-fail-fast
echo "test: the benchmark runs (tiny size; timings are not checked)" >&2
BENCH_SCALE=tiny bench/run.sh >/dev/null
