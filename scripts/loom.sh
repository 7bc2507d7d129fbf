#!/usr/bin/env bash
# Model-checks both ring layouts' indices and notification protocol with
# loom (xenmq/tests/loom.rs): xenmq built with `--cfg loom`, which swaps the
# atomics of `xenmq::sync` for loom's, in a target directory of its own.
# Extra arguments go to the test binary (a filter, --nocapture).
set -euo pipefail
cd "$(dirname "$0")/.."
RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom \
    cargo test --release -p xenmq --test loom -- "$@"
