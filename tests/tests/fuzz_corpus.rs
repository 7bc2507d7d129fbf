//! Every fuzz target (`fuzz/`, `xenmq_fuzz::TARGETS`) on a stable
//! toolchain: its committed corpus (`fuzz/corpus/<target>/`, what the
//! campaigns of `scripts/fuzz.sh` kept) replayed, then a stream of
//! generated inputs. A target panics on a broken property, which fails the
//! test with the target's name and the input.

use std::path::Path;
use std::time::Instant;

/// Generated inputs per target after the corpus.
const GENERATED: u64 = 400;

fn corpus(name: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(name);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("a corpus entry").path())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            (
                p.display().to_string(),
                std::fs::read(&p).expect("a corpus file"),
            )
        })
        .collect()
}

/// A splitmix64 stream: the same inputs on every run.
fn generated(seed: u64, n: u64) -> impl Iterator<Item = Vec<u8>> {
    let mut s = seed;
    let mut next = move || {
        s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    (0..n).map(move |_| {
        let len = (next() % 600) as usize;
        (0..len).map(|_| next() as u8).collect()
    })
}

fn run(name: &str, target: fn(&[u8]), input: &[u8], what: &str) {
    let r = std::panic::catch_unwind(|| target(input));
    assert!(
        r.is_ok(),
        "fuzz target {name} failed on {what}: {input:02x?}"
    );
}

#[test]
fn every_target_survives_its_corpus_and_generated_inputs() {
    for (i, (name, target)) in xenmq_fuzz::TARGETS.iter().enumerate() {
        let t = Instant::now();
        let files = corpus(name);
        assert!(!files.is_empty(), "fuzz/corpus/{name} is empty");
        for (path, input) in &files {
            run(name, *target, input, path);
        }
        for (k, input) in generated(i as u64, GENERATED).enumerate() {
            run(name, *target, &input, &format!("generated input {k}"));
        }
        eprintln!(
            "{name}: {} corpus inputs and {GENERATED} generated in {:?}",
            files.len(),
            t.elapsed()
        );
    }
}
