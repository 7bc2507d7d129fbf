#!/usr/bin/env bash
# Runs the shared-memory and ring unit tests of xenmq under Miri (nightly),
# which checks every access for undefined behaviour: out-of-bounds or
# misaligned accesses, uses of freed memory, data races between threads,
# invalid values. Too slow for .ci/run (about 13 minutes on 2 CPUs); what it
# found is in docs/reliability.md.
#
# Left out: the property tests and the two-thread stress tests, whose
# thousands of steps take hours under Miri (their single-threaded logic is
# covered by the tests that run, and their concurrency by scripts/loom.sh).
# Isolation is off for proptest's failure files; leaks are ignored because
# the tests' shared pages are leaked on purpose (`shm::leak_pages`).
set -euo pipefail
cd "$(dirname "$0")/.."
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
rustup component list --toolchain nightly --installed | grep -q '^miri' ||
    rustup component add miri --toolchain nightly
PROPTEST_CASES=4 MIRIFLAGS="-Zmiri-disable-isolation -Zmiri-ignore-leaks" \
    CARGO_TARGET_DIR=target/miri cargo +nightly miri test -p xenmq --lib -- shm:: ring:: \
    --skip survives_any --skip honest_peers_never --skip concurrent_scribbler \
    --skip two_threads_stream "$@"
