//! The checker behind `tests/layering.rs`: reads Rust sources as text and finds every path that
//! names another module of the crate (`use crate::...`, `crate::x::...` anywhere in code,
//! `super::` chains that climb out of a module, a `mod.rs` naming its own sub-folder), with
//! comments, strings and character literals removed first. Nothing here compiles the code, so
//! it runs in milliseconds and needs no dependency.
//!
//! Each reference is resolved to an absolute module path (`["twitch", "helix", "Budget"]`) and
//! remembers its file, line, and whether it is test code (inside `#[cfg(test)] mod ... {}` or in
//! a file declared by `#[cfg(test)] mod x;`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// One source file: its path relative to `src/` and its text.
#[derive(Debug, Clone)]
pub struct SourceFile {
    pub path: PathBuf,
    pub text: String,
}

/// One path in one file that names a module of the crate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    pub file: PathBuf,
    pub line: usize,
    /// Module path of the code the reference is in (`["channel", "actor"]`).
    pub from: Vec<String>,
    /// Absolute path it names (`["store", "Change"]`).
    pub to: Vec<String>,
    pub in_test: bool,
}

/// The layers read from the layout map in `src/lib.rs`: module name -> floor (0 = ground).
pub type Layers = BTreeMap<String, usize>;

/// Reads every `.rs` file under `src` (sorted), paths relative to `src`.
pub fn read_sources(src: &Path) -> std::io::Result<Vec<SourceFile>> {
    let mut files = Vec::new();
    let mut dirs = vec![src.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path)?;
                let rel = path.strip_prefix(src).unwrap_or(&path).to_path_buf();
                files.push(SourceFile { path: rel, text });
            }
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

/// The layout map: the lines of `lib.rs`'s doc between `<!-- layers -->` and
/// `<!-- /layers -->` that read `N. `a`, `b`: what they are`, where N is the floor.
pub fn parse_layers(lib_rs: &str) -> Result<Layers, String> {
    let mut layers = Layers::new();
    let mut inside = false;
    let mut seen_block = false;
    for line in lib_rs.lines() {
        let Some(doc) = line.trim_start().strip_prefix("//!") else {
            continue;
        };
        let doc = doc.trim();
        if doc == "<!-- layers -->" {
            inside = true;
            seen_block = true;
            continue;
        }
        if doc == "<!-- /layers -->" {
            inside = false;
            continue;
        }
        if !inside {
            continue;
        }
        let Some((floor, rest)) = doc.split_once(". ") else {
            continue;
        };
        let Ok(floor) = floor.parse::<usize>() else {
            continue;
        };
        let names = rest.split(':').next().unwrap_or_default();
        for name in names.split(',') {
            let name = name.trim().trim_matches('`');
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
                return Err(format!("layer {floor}: `{name}` is not a module name"));
            }
            if layers.insert(name.to_string(), floor).is_some() {
                return Err(format!("`{name}` is listed twice in the layout map"));
            }
        }
    }
    if !seen_block {
        return Err("no `<!-- layers -->` block in the layout map".to_string());
    }
    if layers.is_empty() {
        return Err("the layout map lists no layer".to_string());
    }
    Ok(layers)
}

/// The modules `lib.rs` declares (`mod x;` / `pub mod x;`).
pub fn declared_modules(lib_rs: &str) -> BTreeSet<String> {
    let code = strip(lib_rs);
    let tokens = tokenize(&code);
    let mut out = BTreeSet::new();
    for window in tokens.windows(3) {
        if window[0].text == "mod" && window[2].text == ";" && is_ident(&window[1].text) {
            out.insert(window[1].text.clone());
        }
    }
    out
}

/// Every reference of every file.
pub fn references(files: &[SourceFile]) -> Vec<Reference> {
    let test_files = test_only_files(files);
    let folders = folders(files);
    let mut out = Vec::new();
    for file in files {
        let in_test_file = test_files.contains(&file.path);
        out.extend(file_references(file, in_test_file, &folders));
    }
    out
}

/// The module path of a file: `a/b/c.rs` -> a::b::c, `a/b/mod.rs` -> a::b, `lib.rs` -> root.
pub fn module_path(file: &Path) -> Vec<String> {
    let mut parts: Vec<String> = file
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if let Some(last) = parts.pop() {
        let stem = last.trim_end_matches(".rs");
        if !(stem == "mod" || (parts.is_empty() && (stem == "lib" || stem == "main"))) {
            parts.push(stem.to_string());
        }
    }
    parts
}

/// Folders (module paths of directories) in the sources.
pub fn folders(files: &[SourceFile]) -> BTreeSet<Vec<String>> {
    let mut out = BTreeSet::new();
    for file in files {
        let mut dir: Vec<String> = file
            .path
            .parent()
            .map(|p| p.iter().map(|s| s.to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        while !dir.is_empty() {
            out.insert(dir.clone());
            dir.pop();
        }
    }
    out
}

/// The folder a module path lives in: its longest prefix that is a folder (root = empty).
pub fn folder_of(path: &[String], folders: &BTreeSet<Vec<String>>) -> Vec<String> {
    (1..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|prefix| folders.contains(prefix))
        .unwrap_or_default()
}

/// Edges between top-level modules: (from, to) -> number of references, `from != to`.
pub fn module_edges(refs: &[Reference], with_tests: bool) -> BTreeMap<(String, String), usize> {
    let mut edges = BTreeMap::new();
    for r in refs {
        if r.in_test && !with_tests {
            continue;
        }
        let (Some(from), Some(to)) = (r.from.first(), r.to.first()) else {
            continue;
        };
        if from != to {
            *edges.entry((from.clone(), to.clone())).or_insert(0) += 1;
        }
    }
    edges
}

/// References that break the layer order: from a module to one on its own floor or above.
/// Modules missing from `layers` are reported too (every module must have a floor).
pub fn violations(refs: &[Reference], layers: &Layers) -> Vec<String> {
    let mut out = Vec::new();
    for r in refs {
        let (Some(from), Some(to)) = (r.from.first(), r.to.first()) else {
            continue;
        };
        if from == to {
            continue;
        }
        let (Some(a), Some(b)) = (layers.get(from), layers.get(to)) else {
            // Not a module of the crate (`crate::` followed by a macro, say) or unlisted: the
            // declared-modules check names unlisted modules.
            continue;
        };
        if b >= a {
            out.push(format!(
                "{}:{}: `{from}` (floor {a}) uses `{}` (floor {b}){}",
                r.file.display(),
                r.line,
                r.to.join("::"),
                if r.in_test { " in test code" } else { "" }
            ));
        }
    }
    out
}

/// Folder-to-folder edges (`"twitch" -> "twitch/helix"`), root excluded.
pub fn folder_edges(
    refs: &[Reference],
    folders: &BTreeSet<Vec<String>>,
) -> BTreeSet<(Vec<String>, Vec<String>)> {
    let mut edges = BTreeSet::new();
    for r in refs {
        let from = folder_of(&r.from, folders);
        let to = folder_of(&r.to, folders);
        if from != to && !from.is_empty() && !to.is_empty() {
            edges.insert((from, to));
        }
    }
    edges
}

/// Cycles between folders (any depth) that are not nested in one another: each as a list of
/// folders, or empty when there is none. A sub-folder using its parent's items and the parent
/// using the sub-folder's (`engine` and `engine/filters`) is how a Rust module nests and is
/// not counted; siblings and cousins (`channel` and `store`, `twitch/helix` and `discord`)
/// must not form a circle.
pub fn folder_cycles(refs: &[Reference], folders: &BTreeSet<Vec<String>>) -> Vec<Vec<String>> {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (from, to) in folder_edges(refs, folders) {
        if from.starts_with(&to) || to.starts_with(&from) {
            continue;
        }
        graph
            .entry(from.join("/"))
            .or_default()
            .insert(to.join("/"));
    }
    strongly_connected(&graph)
        .into_iter()
        .filter(|c| c.len() > 1)
        .collect()
}

/// Tarjan's strongly connected components.
fn strongly_connected(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct State<'a> {
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        next: usize,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        s.index.insert(v, s.next);
        s.low.insert(v, s.next);
        s.next += 1;
        s.stack.push(v);
        s.on_stack.insert(v);
        if let Some(targets) = s.graph.get(v) {
            for w in targets {
                let w = w.as_str();
                if !s.index.contains_key(w) {
                    visit(s, w);
                    let lw = s.low[w];
                    let lv = s.low[v];
                    s.low.insert(v, lv.min(lw));
                } else if s.on_stack.contains(w) {
                    let iw = s.index[w];
                    let lv = s.low[v];
                    s.low.insert(v, lv.min(iw));
                }
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                component.push(w.to_string());
                if w == v {
                    break;
                }
            }
            component.sort();
            s.out.push(component);
        }
    }
    let mut s = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        next: 0,
        out: Vec::new(),
    };
    let nodes: Vec<&str> = graph.keys().map(String::as_str).collect();
    for v in nodes {
        if !s.index.contains_key(v) {
            visit(&mut s, v);
        }
    }
    s.out
}

/// Files that are test code as a whole: declared by `#[cfg(test)] mod x;` (and their children).
fn test_only_files(files: &[SourceFile]) -> BTreeSet<PathBuf> {
    let mut test_modules: Vec<Vec<String>> = Vec::new();
    for file in files {
        let code = strip(&file.text);
        let tokens = tokenize(&code);
        let here = module_path(&file.path);
        for (i, t) in tokens.iter().enumerate() {
            if t.text != "mod" || !cfg_test_before(&tokens, i) {
                continue;
            }
            if let (Some(name), Some(end)) = (tokens.get(i + 1), tokens.get(i + 2)) {
                if end.text == ";" {
                    let mut path = here.clone();
                    path.push(name.text.clone());
                    test_modules.push(path);
                }
            }
        }
    }
    files
        .iter()
        .filter(|f| {
            let path = module_path(&f.path);
            test_modules.iter().any(|m| path.starts_with(m))
        })
        .map(|f| f.path.clone())
        .collect()
}

/// Whether the attributes right before token `i` (a `mod`, maybe after `pub`) include
/// `#[cfg(test)]`.
fn cfg_test_before(tokens: &[Token], mut i: usize) -> bool {
    if i > 0 && tokens[i - 1].text == "pub" {
        i -= 1;
    }
    // Walk back over `#[...]` attributes.
    while i >= 2 && tokens[i - 1].text == "]" {
        let mut depth = 0usize;
        let mut j = i - 1;
        loop {
            match tokens[j].text.as_str() {
                "]" => depth += 1,
                "[" => {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                }
                _ => {}
            }
            if j == 0 {
                return false;
            }
            j -= 1;
        }
        if j == 0 || tokens[j - 1].text != "#" {
            return false;
        }
        let inner: Vec<&str> = tokens[j + 1..i - 1]
            .iter()
            .map(|t| t.text.as_str())
            .collect();
        if inner.starts_with(&["cfg", "(", "test", ")"]) {
            return true;
        }
        i = j - 1;
    }
    false
}

fn file_references(
    file: &SourceFile,
    in_test_file: bool,
    folders: &BTreeSet<Vec<String>>,
) -> Vec<Reference> {
    let code = strip(&file.text);
    let tokens = tokenize(&code);
    let base = module_path(&file.path);
    let is_mod_file = file
        .path
        .file_name()
        .is_some_and(|n| n == "mod.rs" || n == "lib.rs");
    // Inline modules open at a brace depth: (name, depth, is test).
    let mut inline: Vec<(String, usize, bool)> = Vec::new();
    let mut depth = 0usize;
    let mut out = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let t = &tokens[i];
        match t.text.as_str() {
            "{" => depth += 1,
            "}" => {
                depth = depth.saturating_sub(1);
                while inline.last().is_some_and(|(_, d, _)| *d > depth) {
                    inline.pop();
                }
            }
            "mod" => {
                if let (Some(name), Some(open)) = (tokens.get(i + 1), tokens.get(i + 2)) {
                    if open.text == "{" && is_ident(&name.text) {
                        let test = cfg_test_before(&tokens, i);
                        inline.push((name.text.clone(), depth + 1, test));
                    }
                }
            }
            _ => {}
        }
        let here: Vec<String> = base
            .iter()
            .cloned()
            .chain(inline.iter().map(|(n, _, _)| n.clone()))
            .collect();
        let in_test = in_test_file || inline.iter().any(|(_, _, test)| *test);
        let starts_path = i == 0 || tokens[i - 1].text != "::" && tokens[i - 1].text != "$";
        if starts_path && (t.text == "crate" || t.text == "super" || t.text == "self") {
            if let Some((prefix, next)) = path_prefix(&tokens, i, &here) {
                for target in targets(&tokens, next, &prefix) {
                    if target.len() > prefix.len() || prefix.len() < here.len() {
                        out.push(Reference {
                            file: file.path.clone(),
                            line: t.line,
                            from: here.clone(),
                            to: target,
                            in_test,
                        });
                    }
                }
            }
        } else if starts_path && is_mod_file && is_ident(&t.text) {
            // A `mod.rs` naming one of its own sub-folders by a relative path (`helix::X`).
            let mut child = here.clone();
            child.push(t.text.clone());
            if folders.contains(&child) && tokens.get(i + 1).is_some_and(|n| n.text == "::") {
                out.push(Reference {
                    file: file.path.clone(),
                    line: t.line,
                    from: here.clone(),
                    to: child,
                    in_test,
                });
            }
        }
        i += 1;
    }
    out
}

/// Resolves the `crate` / `super::super` / `self` start of a path at token `i`: the absolute
/// module it names and the index of the token after its last `::`.
fn path_prefix(tokens: &[Token], i: usize, here: &[String]) -> Option<(Vec<String>, usize)> {
    let mut prefix: Vec<String> = match tokens[i].text.as_str() {
        "crate" => Vec::new(),
        _ => here.to_vec(),
    };
    let mut j = i;
    loop {
        match tokens[j].text.as_str() {
            "super" => {
                prefix.pop()?;
            }
            "crate" if j == i => {}
            "self" if j == i => {}
            _ => return None,
        }
        if tokens.get(j + 1).is_none_or(|t| t.text != "::") {
            return None;
        }
        j += 2;
        match tokens.get(j) {
            Some(t) if t.text == "super" && tokens[i].text != "crate" => continue,
            Some(_) => return Some((prefix, j)),
            None => return None,
        }
    }
}

/// The module paths a path names from token `i` on, under `prefix`: one, or one per item of a
/// `{...}` group. Only the first segment after the prefix is kept (plus a second when it helps
/// tell sub-folders apart), which is all the layer and folder checks need.
fn targets(tokens: &[Token], i: usize, prefix: &[String]) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let Some(first) = tokens.get(i) else {
        return out;
    };
    if first.text == "{" {
        // Items at depth 1, split by commas.
        let mut depth = 0usize;
        let mut j = i;
        let mut expect_item = true;
        while j < tokens.len() {
            match tokens[j].text.as_str() {
                "{" => {
                    depth += 1;
                    if depth == 1 {
                        expect_item = true;
                    }
                }
                "}" => {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                }
                "," if depth == 1 => expect_item = true,
                text if depth == 1 && expect_item && is_ident(text) => {
                    expect_item = false;
                    out.extend(one_target(tokens, j, prefix));
                }
                _ => {}
            }
            j += 1;
        }
        return out;
    }
    if is_ident(&first.text) {
        out.extend(one_target(tokens, i, prefix));
    }
    out
}

fn one_target(tokens: &[Token], i: usize, prefix: &[String]) -> Option<Vec<String>> {
    let name = &tokens[i].text;
    if name == "self" {
        return Some(prefix.to_vec());
    }
    let mut path = prefix.to_vec();
    path.push(name.clone());
    // One more segment, so `crate::twitch::helix::X` tells the `twitch/helix` folder apart.
    if tokens.get(i + 1).is_some_and(|t| t.text == "::") {
        if let Some(next) = tokens.get(i + 2) {
            if is_ident(&next.text) && next.text != "self" {
                path.push(next.text.clone());
            }
        }
    }
    Some(path)
}

fn is_ident(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

#[derive(Debug, Clone)]
struct Token {
    text: String,
    line: usize,
}

/// Identifiers, `::`, and single punctuation characters, with their line numbers.
fn tokenize(code: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let chars: Vec<char> = code.chars().collect();
    let mut line = 1;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if c.is_ascii_alphanumeric() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push(Token {
                text: chars[start..i].iter().collect(),
                line,
            });
        } else if c == ':' && chars.get(i + 1) == Some(&':') {
            out.push(Token {
                text: "::".into(),
                line,
            });
            i += 2;
        } else {
            out.push(Token {
                text: c.to_string(),
                line,
            });
            i += 1;
        }
    }
    out
}

/// The code without comments, string literals (plain, byte, raw) and character literals;
/// newlines are kept so line numbers stay right. Lifetimes (`'a`) are kept.
pub fn strip(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let keep_newlines = |out: &mut String, s: &[char]| {
        for c in s {
            if *c == '\n' {
                out.push('\n');
            }
        }
    };
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let start = i;
            let mut depth = 0usize;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            keep_newlines(&mut out, &chars[start..i.min(chars.len())]);
            out.push(' ');
        } else if let Some(end) = raw_string_end(&chars, i) {
            keep_newlines(&mut out, &chars[i..end]);
            out.push_str("\"\"");
            i = end;
        } else if c == '"' || (c == 'b' && next == Some('"') && !ident_before(&chars, i)) {
            let start = i;
            i += if c == 'b' { 2 } else { 1 };
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            keep_newlines(&mut out, &chars[start..i.min(chars.len())]);
            out.push_str("\"\"");
        } else if c == '\'' {
            // A character literal ('x', '\n', '\u{..}', '\'') or a lifetime ('a).
            if let Some(end) = char_literal_end(&chars, i) {
                out.push_str("' '");
                i = end;
            } else {
                out.push(c);
                i += 1;
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn ident_before(chars: &[char], i: usize) -> bool {
    i > 0 && (chars[i - 1].is_ascii_alphanumeric() || chars[i - 1] == '_')
}

/// End (exclusive) of a raw string `r"..."`, `r#"..."#`, `br"..."` starting at `i`.
fn raw_string_end(chars: &[char], i: usize) -> Option<usize> {
    if ident_before(chars, i) {
        return None;
    }
    let mut j = i;
    if chars.get(j) == Some(&'b') {
        j += 1;
    }
    if chars.get(j) != Some(&'r') {
        return None;
    }
    j += 1;
    let mut hashes = 0;
    while chars.get(j) == Some(&'#') {
        hashes += 1;
        j += 1;
    }
    if chars.get(j) != Some(&'"') {
        return None;
    }
    j += 1;
    while j < chars.len() {
        if chars[j] == '"' && (1..=hashes).all(|k| chars.get(j + k) == Some(&'#')) {
            return Some(j + 1 + hashes);
        }
        j += 1;
    }
    Some(chars.len())
}

/// End (exclusive) of a character literal starting at `i`, or None for a lifetime.
fn char_literal_end(chars: &[char], i: usize) -> Option<usize> {
    match chars.get(i + 1)? {
        '\\' => {
            let mut j = i + 2;
            while j < chars.len() && chars[j] != '\'' {
                j += 1;
            }
            Some(j + 1)
        }
        _ if chars.get(i + 2) == Some(&'\'') => Some(i + 3),
        _ => None,
    }
}
