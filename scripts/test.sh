#!/usr/bin/env bash
# The whole xenmq test suite, from a fresh machine: installs what it needs
# (Debian packages, rustup target and components), then runs the quality
# gates and every test. Exits non-zero on the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

# --- set-up ---------------------------------------------------------------
debs=(gcc make binutils libc6-dev libxen-dev xenstore-utils qemu-system-x86 cpio xz-utils)
missing=()
for p in "${debs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
    step "installing Debian packages: ${missing[*]}"
    sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
if command -v rustup >/dev/null; then
    rustup component list --installed | grep -q '^rustfmt' || rustup component add rustfmt
    rustup component list --installed | grep -q '^clippy' || rustup component add clippy
    rustup target list --installed | grep -qx x86_64-unknown-none || rustup target add x86_64-unknown-none
    # Kernel modules (xenmq-kmod): -Zbuild-std needs nightly's library sources.
    rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
    rustup component list --toolchain nightly --installed | grep -q '^rust-src' ||
        rustup component add rust-src --toolchain nightly
    # The minimum Rust version the crates declare (rust-version), for its build below.
    msrv=$(sed -n 's/^rust-version = "\(.*\)"/\1/p' Cargo.toml)
    rustup toolchain list | grep -q "^$msrv-" || rustup toolchain install "$msrv" --profile minimal
fi

# --- gates ----------------------------------------------------------------
step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --quiet -- -D warnings

step "no_std core: xenmq for x86_64-unknown-none"
cargo build --quiet -p xenmq --no-default-features --target x86_64-unknown-none

step "model checking: both rings' indices and notifications under loom"
bash scripts/loom.sh --quiet 2>&1 | tee target/loom.log | grep -E '^test result'

step "fuzzing: every fuzz target for 10 s under libFuzzer (AddressSanitizer)"
bash scripts/fuzz.sh smoke 10 2>&1 | tee target/fuzz.log | grep -E '^fuzz: '

step "docs: cargo doc --workspace --no-deps, warnings denied"
RUSTDOCFLAGS="-D warnings" cargo doc --quiet --workspace --no-deps

if command -v rustup >/dev/null; then
    step "minimum supported Rust: cargo +$msrv build --workspace"
    CARGO_TARGET_DIR=target/msrv cargo "+$msrv" build --quiet --workspace --lib --bins
fi

step "xenmq-cli without its bench and demo features (what installs without libxen-dev)"
cargo build --quiet -p xenmq-cli --no-default-features

# The benchmark built as on a machine without Xen's headers (XEN_INCLUDE_DIR
# pointed at a directory without xen/io/ring.h), in a target directory of its
# own: the build warns that the C contender is left out, and the benchmark
# runs the others and says why c-ring is missing.
step "xenmq-bench without Xen's headers: built without the C contender, and says so"
no_xen=target/no-xen-headers
XEN_INCLUDE_DIR=/nonexistent CARGO_TARGET_DIR=$no_xen cargo build -p xenmq-bench 2>&1 |
    tee target/no-xen-headers.log | grep -F 'the C contender (c-ring) is not built' ||
    { cat target/no-xen-headers.log; exit 1; }
$no_xen/debug/xenmq-bench --reps 1 --budget-ms 2 --modes tput.block --pages 1 --no-progress |
    grep -F 'c-ring is not in this build, so no ratios: /nonexistent/xen/io/ring.h is missing'
if $no_xen/debug/xenmq-bench --only c-ring 2>/dev/null; then
    echo "xenmq-bench without the C contender accepted --only c-ring"; exit 1
fi

# --- tests ----------------------------------------------------------------
step "benchmark smoke run: xenmq bench --quick (figures reported, not asserted)"
cargo run --release -q -p xenmq-cli -- bench --quick --json target/bench.json --plot target/bench.svg

# The real-Xen end-to-end run goes first, on its own, so that its verdict line
# (`xen-e2e: N passed, M failed`) and its scenarios show in the log.
xen_e2e=example_drivers_between_dom0_and_a_domu
step "real Xen: the example drivers between dom0 and a domU (boots Xen under qemu)"
cargo test -q -p xenmq-tests --test xen_e2e -- --nocapture "$xen_e2e" 2>&1 |
    tee target/xen-e2e.log | grep -E '^xen-e2e:|^ *(PASS|FAIL) |^test result|panicked'

step "cargo test --workspace"
cargo test --workspace --no-fail-fast -- --skip "$xen_e2e" 2>&1 | tee target/test.log

# One closing line for the whole run: every cargo test binary's counts, and
# the real-Xen run's, added up.
awk '/^test result:/ { p += $4; f += $6 } END { printf "tests: %d passed, %d failed\n", p, f }' \
    target/xen-e2e.log target/test.log
