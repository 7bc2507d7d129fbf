#!/usr/bin/env bash
# Runs xenmq's fuzz targets (fuzz/, xenmq_fuzz::TARGETS) with libFuzzer.
#
#   scripts/fuzz.sh smoke [SECONDS]   each target for SECONDS (default 10),
#                                     from the committed corpus; fails on a
#                                     crash (.ci/run does this)
#   scripts/fuzz.sh campaign [RUNS [TARGET...]]
#                                     each target (default: all) for RUNS
#                                     executions (default 10^7), new inputs
#                                     merged into fuzz/corpus/, its
#                                     executions and coverage written to
#                                     its row of docs/fuzzing.md
#   scripts/fuzz.sh TARGET... -- ARGS one target's run, libFuzzer ARGS
#
# FUZZ_SANITIZER=none runs without AddressSanitizer (about twice as fast;
# enough for targets that reach no unsafe code: their bounds are Rust's),
# built under target/fuzz-none/.
#
# Needs a nightly toolchain and cargo-fuzz (installed here if missing).
set -euo pipefail
cd "$(dirname "$0")/.."

targets=(drivers native_ring negotiation ring_consumer sim_control xenbus xenstore_client xenstore_server)
mode=${1:-smoke}

command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal

sanitizer=${FUZZ_SANITIZER:-address}
# Builds of another sanitizer in a directory of their own: switching would
# rebuild every dependency each time.
dirs=()
[ "$sanitizer" = address ] || dirs=(--target-dir "$PWD/target/fuzz-$sanitizer")
fuzz() {
    local verb=$1
    shift
    cargo +nightly fuzz "$verb" --sanitizer "$sanitizer" "${dirs[@]}" "$@"
}

echo "building the fuzz targets (nightly, sanitizer: $sanitizer)"
fuzz build --features libfuzzer

# libFuzzer writes new inputs into its first corpus directory: a scratch
# copy, so that a run never edits the repository by itself.
scratch() {
    local d=target/fuzz-corpus/$1
    rm -rf "$d"
    mkdir -p "$d"
    cp fuzz/corpus/"$1"/* "$d"/
    echo "$d"
}

# `stat::number_of_executed_units` and the last `cov:` of a run's log.
stats() {
    local execs cov
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$1" | tail -1)
    cov=$(grep -aoE 'cov: [0-9]+' "$1" | tail -1 | cut -d' ' -f2)
    echo "${execs:-0} ${cov:-0}"
}

case "$mode" in
smoke)
    secs=${2:-10}
    for t in "${targets[@]}"; do
        log=target/fuzz-$t.log
        if ! fuzz run --features libfuzzer "$t" "$(scratch "$t")" -- \
            -max_total_time="$secs" -print_final_stats=1 >"$log" 2>&1; then
            tail -40 "$log"
            echo "fuzz: $t crashed (reproducer under fuzz/artifacts/$t/)"
            exit 1
        fi
        read -r execs cov < <(stats "$log")
        echo "fuzz: $t: $execs executions in ${secs} s, coverage $cov, no crash"
    done
    ;;
campaign)
    runs=${2:-10000000}
    shift $(($# < 2 ? $# : 2))
    chosen=("$@")
    ((${#chosen[@]})) || chosen=("${targets[@]}")
    doc=docs/fuzzing.md
    for t in "${chosen[@]}"; do
        [[ " ${targets[*]} " == *" $t "* ]] || { echo "fuzz: no target $t"; exit 2; }
        log=target/fuzz-$t.log
        start=$(date +%s)
        if ! fuzz run --features libfuzzer "$t" "$(scratch "$t")" -- \
            -runs="$runs" -print_final_stats=1 >"$log" 2>&1; then
            tail -40 "$log"
            echo "fuzz: $t crashed (reproducer under fuzz/artifacts/$t/)"
            exit 1
        fi
        secs=$(($(date +%s) - start))
        read -r execs cov < <(stats "$log")
        # Keep the smallest corpus with the coverage of both.
        fuzz cmin --features libfuzzer "$t" target/fuzz-corpus/"$t" >/dev/null 2>&1 || true
        rm -f fuzz/corpus/"$t"/*
        cp target/fuzz-corpus/"$t"/* fuzz/corpus/"$t"/
        kept=$(find fuzz/corpus/"$t" -type f | wc -l)
        echo "fuzz: $t: $execs executions in $secs s, coverage $cov, corpus $kept, no crash"
        # The target's row replaces its last one; the others stay.
        row="| \`$t\` | $execs | $secs s | $cov | $kept | 0 | $sanitizer | $(date -u +%F) |"
        rows=$( { grep -E '^\| `[a-z_]+` \|' "$doc" 2>/dev/null | grep -vF "| \`$t\` |" || true; echo "$row"; } | sort)
        {
            echo "# Fuzzing"
            echo
            echo "What \`scripts/fuzz.sh campaign RUNS [TARGET...]\` last recorded for each target:"
            echo "libFuzzer, from the committed corpus (\`fuzz/corpus/\`, minimised after the run)."
            echo "The sanitizer column says whether AddressSanitizer was on: targets that reach unsafe"
            echo "code (the shared-memory layer under the rings and drivers) always run with it; for the"
            echo "others it is optional, their bounds being Rust's own checks with debug assertions on."
            echo "Coverage is libFuzzer's \`cov\` (edges reached). \`.ci/run\`"
            echo "runs each target for a few seconds (\`scripts/fuzz.sh smoke\`) and replays the corpus"
            echo "on stable (\`tests/tests/fuzz_corpus.rs\`); what each target checks is in its module's"
            echo "comment (\`fuzz/src/targets/\`)."
            echo
            echo "Machine: $(nproc) CPUs, $(uname -r); $(rustc +nightly --version)."
            echo
            echo "| target | executions | time | coverage | corpus | crashes | sanitizer | run on |"
            echo "|---|---|---|---|---|---|---|---|"
            echo "$rows"
        } >"$doc"
        echo "fuzz: wrote $doc"
    done
    ;;
*)
    # One or more targets, then libFuzzer's own arguments after `--`.
    names=()
    while (($#)) && [ "$1" != "--" ]; do names+=("$1"); shift; done
    [ "${1:-}" = "--" ] && shift
    for t in "${names[@]}"; do
        fuzz run --features libfuzzer "$t" "$(scratch "$t")" -- "$@"
    done
    ;;
esac
