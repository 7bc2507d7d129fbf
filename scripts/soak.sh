#!/usr/bin/env bash
# The long soak on the simulator (tests/tests/soak.rs): 1,000 frontends and
# 1,000 backends killed at random points, 1,000 connect/disconnect cycles
# of one device; counts can be given (RUNS CYCLES). .ci/run runs the same
# tests with the defaults (40 kills, 150 cycles). The figures each test
# prints go to docs/reliability.md.
set -euo pipefail
cd "$(dirname "$0")/.."
XENMQ_SOAK_RUNS=${1:-1000} XENMQ_SOAK_CYCLES=${2:-1000} \
    cargo test --release -p xenmq-tests --test soak --test soak_cycles -- \
    --nocapture --test-threads 1
