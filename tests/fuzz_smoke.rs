//! A short smoke run of every cargo-fuzz target, so none of them can rot between fuzzing
//! campaigns (docs/FUZZING.md has the long runs).
//!
//! Each target in `fuzz/Cargo.toml` is a one-line `fuzz_target!` around a `fuzzing::check`
//! function of the service library; this runs the same functions, without libFuzzer, over the
//! target's seeds (`fuzz/seeds/<target>/`, where every crash a campaign found is kept as a
//! regression input) and over a fixed number of deterministic mutations of them (bit flips,
//! cuts, repeats, splices, and bytes that matter to the parsers: CR, LF, NUL, `$(`, `!`, `/`,
//! U+001F, a zero-width space). A property that fails panics here exactly as under the fuzzer.

use std::path::{Path, PathBuf};

/// Mutations per seed: enough to reach the parsers' error paths, small enough for CI.
const MUTATIONS_PER_SEED: usize = 1000;

/// Bytes inserted by mutation: the delimiters and prefixes the parsers and formatters care about.
const INTERESTING: &[&[u8]] = &[
    b"\r",
    b"\n",
    b"\r\n",
    b"\0",
    b"$(",
    b")",
    b"!",
    b"/",
    b".",
    b"@",
    b";",
    b" :",
    b"=",
    b"\x1f",
    b"\\",
    b"[",
    b"]",
    b"\"",
    "\u{200B}".as_bytes(),
    "\u{FDFA}".as_bytes(),
    b"\xff",
];

/// A fuzz target's body: the library function its `fuzz_target!` runs.
type Check = Box<dyn Fn(&[u8])>;

/// Every fuzz target and its body.
fn targets() -> Vec<(&'static str, Check)> {
    let base = firehose::http::rules::fuzzing::base();
    vec![
        (
            "template",
            Box::new(firehose::engine::template::fuzzing::check),
        ),
        ("fold", Box::new(firehose::engine::fold::fuzzing::check)),
        (
            "store_keys",
            Box::new(firehose::store::keys::fuzzing::check),
        ),
        (
            "admin_rules",
            Box::new(move |data: &[u8]| firehose::http::rules::fuzzing::check(&base, data)),
        ),
        ("config", Box::new(firehose::config::fuzzing::check)),
        (
            "irc_line",
            Box::new(firehose::twitch::convert::fuzzing::check),
        ),
        (
            "outbound",
            Box::new(firehose::twitch::outbound::fuzzing::check),
        ),
        ("engine", Box::new(firehose::engine::fuzzing::check)),
    ]
}

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// The `[[bin]]` names of fuzz/Cargo.toml.
fn declared_targets() -> Vec<String> {
    let manifest = std::fs::read_to_string(fuzz_dir().join("Cargo.toml")).expect("fuzz/Cargo.toml");
    let manifest: toml::Table = toml::from_str(&manifest).expect("fuzz/Cargo.toml parses");
    manifest["bin"]
        .as_array()
        .expect("[[bin]] entries")
        .iter()
        .map(|bin| bin["name"].as_str().expect("a bin name").to_string())
        .collect()
}

fn seeds(target: &str) -> Vec<Vec<u8>> {
    let dir = fuzz_dir().join("seeds").join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("a seed entry").path())
        .collect();
    files.sort();
    files
        .iter()
        .map(|f| std::fs::read(f).unwrap_or_else(|e| panic!("{}: {e}", f.display())))
        .collect()
}

/// xorshift64*: deterministic, so a failure here reproduces on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// One mutation of `seed` (sometimes spliced with `other`).
fn mutate(rng: &mut Rng, seed: &[u8], other: &[u8]) -> Vec<u8> {
    let mut out = seed.to_vec();
    for _ in 0..=rng.below(4) {
        let at = rng.below(out.len() + 1);
        match rng.below(6) {
            0 if !out.is_empty() => {
                let i = rng.below(out.len());
                out[i] ^= 1 << rng.below(8);
            }
            1 => {
                let piece = INTERESTING[rng.below(INTERESTING.len())];
                out.splice(at..at, piece.iter().copied());
            }
            2 => out.truncate(at),
            3 if !out.is_empty() => {
                let from = rng.below(out.len());
                let to = (from + 1 + rng.below(16)).min(out.len());
                let piece = out[from..to].repeat(1 + rng.below(64));
                out.splice(at..at, piece);
            }
            4 => {
                let from = rng.below(other.len() + 1);
                out.splice(at..at, other[from..].iter().copied());
            }
            _ => out.push(rng.below(256) as u8),
        }
    }
    out
}

#[test]
fn every_declared_fuzz_target_is_smoke_run_and_has_seeds() {
    let run: Vec<&str> = targets().iter().map(|(name, _)| *name).collect();
    for name in declared_targets() {
        assert!(
            run.contains(&name.as_str()),
            "fuzz target `{name}` is not in this smoke run"
        );
        assert!(
            !seeds(&name).is_empty(),
            "fuzz target `{name}` has no seeds"
        );
    }
}

#[test]
fn every_fuzz_target_holds_its_properties_on_seeds_and_mutations() {
    for (name, check) in targets() {
        let seeds = seeds(name);
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ name.len() as u64);
        for (i, seed) in seeds.iter().enumerate() {
            run_one(name, &check, seed);
            let other = &seeds[(i + 1) % seeds.len()];
            for _ in 0..MUTATIONS_PER_SEED {
                run_one(name, &check, &mutate(&mut rng, seed, other));
            }
        }
    }
}

/// Runs one input; a failed property names the target and the input (to add to its seeds).
fn run_one(name: &str, check: &dyn Fn(&[u8]), data: &[u8]) {
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(data)));
    if let Err(panic) = outcome {
        let why = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or("a panic");
        panic!(
            "fuzz target `{name}` failed on {:?}: {why}",
            String::from_utf8_lossy(data)
        );
    }
}
