//! The house stays straight: every module of the service crate uses only modules on floors
//! below its own, as the layout map at the top of `src/lib.rs` lists them (the single source
//! of truth), and no two folders import each other in a circle. This reads the sources as
//! text (`layering/check.rs`), test code included, so a wrong `use` fails the suite the moment
//! it is written, whatever the compiler accepts.
//!
//! The checker's own tests below run it on small made-up crates, so a checker that found
//! nothing could not pass.

#[path = "layering/check.rs"]
mod check;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use check::{
    declared_modules, folder_cycles, folder_edges, folders, module_edges, parse_layers, references,
    violations, SourceFile,
};

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn lib_rs() -> String {
    std::fs::read_to_string(src().join("lib.rs")).expect("src/lib.rs is readable")
}

fn sources() -> Vec<SourceFile> {
    check::read_sources(&src()).expect("src/ is readable")
}

#[test]
fn the_layout_map_gives_every_module_exactly_one_floor() {
    let layers = parse_layers(&lib_rs()).unwrap_or_else(|e| panic!("src/lib.rs: {e}"));
    let listed: BTreeSet<String> = layers.keys().cloned().collect();
    let declared = declared_modules(&lib_rs());
    assert_eq!(
        listed, declared,
        "the layout map in src/lib.rs must list exactly the modules lib.rs declares"
    );
    // Ground floor to top floor with no gap, so "below" means what it says.
    let floors: BTreeSet<usize> = layers.values().copied().collect();
    let expected: BTreeSet<usize> = (0..floors.len()).collect();
    assert_eq!(floors, expected, "floors must be numbered 0, 1, 2, ...");
}

#[test]
fn no_module_uses_one_on_its_own_floor_or_above() {
    let layers = parse_layers(&lib_rs()).unwrap_or_else(|e| panic!("src/lib.rs: {e}"));
    let refs = references(&sources());
    let broken = violations(&refs, &layers);
    assert!(
        broken.is_empty(),
        "imports against the layer order of src/lib.rs:\n{}",
        broken.join("\n")
    );
}

#[test]
fn no_import_circle_between_folders() {
    let files = sources();
    let refs = references(&files);
    let cycles = folder_cycles(&refs, &folders(&files));
    assert!(
        cycles.is_empty(),
        "folders importing each other: {cycles:?}"
    );
}

/// Helix is part of Twitch (`twitch/helix/`) but a component of its own: the rest of
/// `twitch` calls it (outbound moderation), it never calls back (issue 11: the budget used to
/// borrow Twitch's sliding window, which now lives in `util`).
#[test]
fn helix_uses_nothing_of_the_rest_of_twitch() {
    let files = sources();
    let refs = references(&files);
    let helix = vec!["twitch".to_string(), "helix".to_string()];
    let back: Vec<_> = refs
        .iter()
        .filter(|r| r.from.starts_with(&helix) && r.to.first().is_some_and(|m| m == "twitch"))
        .filter(|r| !r.to.starts_with(&helix))
        .map(|r| format!("{}:{}: {}", r.file.display(), r.line, r.to.join("::")))
        .collect();
    assert!(back.is_empty(), "twitch::helix uses twitch: {back:?}");
}

/// The checker really sees the crate's imports (a checker that finds nothing passes nothing).
#[test]
fn the_checker_sees_the_crates_imports() {
    let refs = references(&sources());
    let edges = module_edges(&refs, true);
    for (from, to) in [
        ("app", "channel"),
        ("channel", "store"),
        ("store", "engine"),
        ("http", "app"),
        ("twitch", "util"),
    ] {
        assert!(
            edges.contains_key(&(from.to_string(), to.to_string())),
            "no {from} -> {to} import found: {edges:?}"
        );
    }
}

// The checker on made-up crates.

fn file(path: &str, text: &str) -> SourceFile {
    SourceFile {
        path: PathBuf::from(path),
        text: text.to_string(),
    }
}

const MAP: &str = "//! # Layout\n//!\n//! <!-- layers -->\n//! 0. `config`: ground.\n//! 1. `engine`: pure.\n//!    (a second line of the same item)\n//! 2. `store`: state.\n//! 3. `twitch`, `discord`: platforms.\n//! <!-- /layers -->\n\npub mod config;\npub mod discord;\npub mod engine;\npub mod store;\npub mod twitch;\n";

fn broken(files: &[SourceFile]) -> Vec<String> {
    let layers = parse_layers(MAP).expect("the made-up map parses");
    violations(&references(files), &layers)
}

#[test]
fn checker_reads_floors_from_the_map() {
    let layers = parse_layers(MAP).expect("parses");
    assert_eq!(layers["config"], 0);
    assert_eq!(layers["engine"], 1);
    assert_eq!(layers["twitch"], 3);
    assert_eq!(layers["discord"], 3);
    assert_eq!(layers.len(), 5);
    assert_eq!(declared_modules(MAP).len(), 5);
    assert!(parse_layers("//! no map here\n").is_err());
    assert!(parse_layers("//! <!-- layers -->\n//! 0. `a`: x\n//! 1. `a`: y\n").is_err());
}

#[test]
fn checker_catches_an_import_from_above() {
    let files = [
        file("store/mod.rs", "use crate::engine::ChannelRules;\n"),
        file(
            "store/writer.rs",
            "fn f() { let _ = crate::twitch::x(); }\n",
        ),
    ];
    let found = broken(&files);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with("store/writer.rs:1: `store`"),
        "{found:?}"
    );
}

#[test]
fn checker_catches_an_import_on_the_same_floor() {
    let found = broken(&[file(
        "twitch/outbound.rs",
        "use crate::discord::Outbound;\n",
    )]);
    assert_eq!(found.len(), 1, "{found:?}");
}

#[test]
fn checker_reads_groups_super_chains_and_test_code() {
    let files = [
        // A group naming two modules, one of them above.
        file(
            "store/model.rs",
            "use crate::{engine::{Action, Role}, twitch::convert};\n",
        ),
        // `super::super` climbs out of `engine` to the crate root.
        file(
            "engine/rules/mod.rs",
            "use super::super::store::Row;\nuse super::Action;\n",
        ),
        // Test code counts too, inline and in files declared `#[cfg(test)] mod x;`.
        file(
            "config/mod.rs",
            "#[cfg(test)]\nmod tests;\n#[cfg(test)]\nmod inline { use crate::store::X; }\n",
        ),
        file("config/tests.rs", "use crate::engine::Role;\n"),
    ];
    let refs = references(&files);
    let found = broken(&files);
    assert_eq!(found.len(), 4, "{found:?}");
    assert!(found.iter().any(|f| f.contains("store::Row")), "{found:?}");
    assert!(
        found.iter().any(|f| f.contains("twitch::convert")),
        "{found:?}"
    );
    let in_test: Vec<_> = refs.iter().filter(|r| r.in_test).collect();
    assert_eq!(in_test.len(), 2, "{refs:?}");
    assert!(found.iter().filter(|f| f.ends_with("in test code")).count() == 2);
}

#[test]
fn checker_ignores_comments_strings_and_unrelated_paths() {
    let files = [file(
        "store/mod.rs",
        concat!(
            "//! See [`crate::twitch::x`].\n",
            "/* crate::twitch::y /* nested */ crate::discord::z */\n",
            "const A: &str = \"crate::twitch::q\";\n",
            "const B: &str = r#\"crate::discord::w \"quoted\" \"#;\n",
            "const C: char = '\"'; fn f<'a>(x: &'a str) {}\n",
            "pub(crate) fn g() {}\n",
            "macro_rules! m { () => { $crate::twitch::x() } }\n",
            "use std::sync::Arc;\n",
        ),
    )];
    assert!(broken(&files).is_empty(), "{:?}", broken(&files));
}

#[test]
fn checker_finds_a_circle_between_sibling_folders_but_not_a_nested_one() {
    let files = [
        file("channel/actor.rs", "use crate::store::Change;\n"),
        file("store/journal.rs", "use crate::channel::ChannelKey;\n"),
        file("engine/mod.rs", "pub mod filters;\nuse filters::check;\n"),
        file("engine/filters/mod.rs", "use super::Action;\n"),
    ];
    let refs = references(&files);
    let all = folders(&files);
    let edges = folder_edges(&refs, &all);
    let engine = vec!["engine".to_string()];
    let filters = vec!["engine".to_string(), "filters".to_string()];
    assert!(
        edges.contains(&(engine.clone(), filters.clone())),
        "{edges:?}"
    );
    assert!(edges.contains(&(filters, engine)), "{edges:?}");
    assert_eq!(
        folder_cycles(&refs, &all),
        vec![vec!["channel".to_string(), "store".to_string()]]
    );
}
