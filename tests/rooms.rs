//! The rooms stay apart (docs/development.md, "Architecture"): every
//! `crate::` path in a room's files names a room that room may import. A
//! new import that breaks the map fails here, with the file and the line,
//! so that the map is changed on purpose or the code moves where it
//! belongs.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

/// What each room may import (the table in docs/development.md).
const ALLOWED: &[(&str, &[&str])] = &[
    ("protocol", &[]),
    ("transport", &[]),
    ("log", &[]),
    ("config", &["transport"]),
    ("metrics", &["config", "transport"]),
    ("pm", &["config", "log", "metrics", "protocol", "transport"]),
    ("upstream", &["config", "log", "metrics", "pm", "transport"]),
    ("gateway", &["config", "log", "metrics", "protocol", "transport", "upstream"]),
    ("status", &["config", "metrics", "pm"]),
    ("apache", &["config", "gateway", "log", "metrics", "pm", "protocol", "status", "transport", "upstream"]),
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())).flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The room a file of `src/` belongs to: its first directory, or the
/// file's own name for `src/log.rs`.
fn room_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    Some(first.strip_suffix(".rs").unwrap_or(first).to_string())
}

/// Every room named after `crate::` on a line of code (comments skipped).
fn imports(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            let name: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            // `use crate::{a, b}`: each name in the braces.
            if name.is_empty() && rest.starts_with('{') {
                let inner = &rest[1..rest.find('}').unwrap_or(rest.len())];
                for item in inner.split(',') {
                    let item = item.trim().split("::").next().unwrap_or("").trim();
                    if !item.is_empty() {
                        out.push((n + 1, item.to_string()));
                    }
                }
            } else if !name.is_empty() {
                out.push((n + 1, name));
            }
        }
    }
    out
}

#[test]
fn every_room_imports_only_what_the_map_allows() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut broken = Vec::new();
    let mut seen = 0;
    for file in &files {
        let Some(room) = room_of(&src, file) else { continue };
        if room == "lib" {
            continue;
        }
        let may = allowed.get(room.as_str()).unwrap_or_else(|| {
            panic!(
                "{} is in a room the map does not know ({room}): add it to docs/development.md and here",
                file.display()
            )
        });
        let text = fs::read_to_string(file).unwrap();
        for (line, target) in imports(&text) {
            seen += 1;
            if target != room && !may.contains(&target.as_str()) {
                broken.push(format!("{}:{line}: {room} imports {target}", file.display()));
            }
        }
    }
    assert!(seen > 100, "only {seen} crate:: paths found: is the parser broken?");
    assert!(broken.is_empty(), "imports the map does not allow:\n{}", broken.join("\n"));
}

#[test]
fn the_parser_sees_braced_and_inline_paths() {
    let found = imports("use crate::{config::Config, log::Level};\nlet x = crate::metrics::board(); // crate::pm\n");
    let names: Vec<&str> = found.iter().map(|(_, n)| n.as_str()).collect();
    assert_eq!(names, ["config", "log", "metrics"]);
}
