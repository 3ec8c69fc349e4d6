//! The manual cannot drift from the code: docs/directives.md against the
//! directive table httpd sees (`command_rec` in c-shim/mod_fastcgi.c) and the
//! option parser (src/config/options.rs, and `-compat` in src/config/mod.rs).
//! A directive or option in one and not the other fails, and so do a
//! section without one of httpd's manual fields, a Context that does not say
//! where the code accepts it, and a link to a section that does not exist.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

fn source(rel: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

const FIELDS: [&str; 8] =
    ["Description", "Syntax", "Default", "Context", "Override", "Status", "Module", "Compatibility"];
const COMPAT: [&str; 3] = ["Same as mod_fastcgi 2.4.7", "New", "Differs from mod_fastcgi 2.4.7"];
const AUTH: [&str; 3] = ["FastCgiAuthenticator", "FastCgiAuthorizer", "FastCgiAccessChecker"];

/// `FCGI_CMD("Name", FCGI_DIRECTIVE_KIND..., WHERE, ...)`: name → kind.
fn command_table() -> BTreeMap<String, String> {
    let c = source("c-shim/mod_fastcgi.c");
    let table = c.split("fastcgi_cmds[]").nth(1).expect("no fastcgi_cmds[] in c-shim/mod_fastcgi.c");
    let table = &table[..table.find("{NULL}").expect("command table end")];
    let mut out = BTreeMap::new();
    for entry in table.split("FCGI_CMD(").skip(1) {
        let mut parts = entry.splitn(3, ',');
        let name = parts.next().unwrap_or("").trim().trim_matches('"').to_string();
        let kind = parts.next().unwrap_or("").split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(!name.is_empty() && kind.starts_with("FCGI_DIRECTIVE_"), "unparsed command entry: {entry}");
        out.insert(name, kind);
    }
    out
}

/// Where httpd accepts a directive of `kind` (the shim's table says
/// RSRC_CONF or ACCESS_CONF; src/apache/directives.rs narrows RSRC_CONF to
/// the main server for all but the two server definitions).
fn context_of(kind: &str) -> &'static str {
    match kind {
        "FCGI_DIRECTIVE_SERVER" | "FCGI_DIRECTIVE_EXTERNAL_SERVER" => "server config, virtual host",
        k if k.starts_with("FCGI_DIRECTIVE_AUTH") => "directory",
        "FCGI_DIRECTIVE_REQUEST_BUFFERING" => "server config, virtual host, directory",
        _ => "server config",
    }
}

/// `names` and their aliases: the directives with the same entry point.
fn with_aliases<'a>(names: impl IntoIterator<Item = &'a str>, table: &BTreeMap<String, String>) -> BTreeSet<String> {
    let kinds: BTreeSet<&String> = names.into_iter().filter_map(|n| table.get(n)).collect();
    table.iter().filter(|(_, k)| kinds.contains(k)).map(|(n, _)| n.clone()).collect()
}

/// The option names of `parse_options`' match arms, lower case, with the
/// directives that accept each.
fn code_options(directives: &BTreeMap<String, String>) -> BTreeMap<String, BTreeSet<String>> {
    let sets = |pattern: &str| -> Vec<&'static str> {
        pattern
            .split('|')
            .flat_map(|s| match s.trim() {
                "_" => vec!["FastCgiServer", "FastCgiExternalServer", "FastCgiConfig"],
                "Static" => vec!["FastCgiServer"],
                "External" => vec!["FastCgiExternalServer"],
                "Dynamic" => vec!["FastCgiConfig"],
                other => panic!("unknown option set {other:?} in src/config/options.rs"),
            })
            .collect()
    };
    let code = source("src/config/options.rs");
    let mut out = BTreeMap::new();
    for line in code.lines().map(str::trim) {
        if !(line.starts_with('(') && line.contains("\"-") && line.contains(") =>")) {
            continue;
        }
        let head = &line[1..line.find(") =>").expect("arm")];
        let (pattern, names) = head.split_once(',').expect("(set, name) arm");
        let accepted = with_aliases(sets(pattern), directives);
        for name in names.split('|').map(|n| n.trim().trim_matches('"')) {
            assert!(name.starts_with('-'), "unparsed option arm: {line}");
            out.entry(name.to_string()).or_insert_with(BTreeSet::new).extend(accepted.iter().cloned());
        }
    }
    assert!(out.len() >= 30, "found only {} options in src/config/options.rs: did its match change shape?", out.len());
    let config = source("src/config/mod.rs");
    if config.contains("eq_ignore_ascii_case(\"-compat\")") {
        out.insert("-compat".into(), with_aliases(AUTH, directives));
    }
    out
}

struct Section {
    line: usize,
    fields: BTreeMap<String, String>,
}

/// `## NAME directive` and `## -name option` sections with their
/// `| Field: | value |` rows; also every heading's anchor.
fn manual() -> (BTreeMap<String, Section>, BTreeMap<String, Section>, BTreeSet<String>) {
    let doc = source("docs/directives.md");
    let (mut directives, mut options, mut anchors) = (BTreeMap::new(), BTreeMap::new(), BTreeSet::new());
    let mut current: Option<(bool, String)> = None;
    for (i, line) in doc.lines().enumerate() {
        if line.starts_with('#') {
            let title = line.trim_start_matches('#').trim();
            anchors.insert(slug(title));
            current = None;
            if let Some(name) = title.strip_suffix(" directive").filter(|_| line.starts_with("## ")) {
                assert!(
                    directives.insert(name.to_string(), Section { line: i + 1, fields: BTreeMap::new() }).is_none(),
                    "two sections for {name}"
                );
                current = Some((true, name.to_string()));
            } else if let Some(name) = title.strip_suffix(" option").filter(|_| line.starts_with("## ")) {
                let key = name.to_ascii_lowercase();
                assert!(
                    options.insert(key.clone(), Section { line: i + 1, fields: BTreeMap::new() }).is_none(),
                    "two sections for {name}"
                );
                current = Some((false, key));
            }
            continue;
        }
        let Some((is_directive, name)) = &current else { continue };
        let Some(row) = line.strip_prefix("| ") else { continue };
        let Some((field, value)) = row.split_once(": | ") else { continue };
        let value = value.trim_end().trim_end_matches('|').trim().to_string();
        let map = if *is_directive { &mut directives } else { &mut options };
        if let Some(s) = map.get_mut(name) {
            s.fields.insert(field.to_string(), value);
        }
    }
    (directives, options, anchors)
}

/// GitHub's heading anchors: lower case, spaces to `-`, punctuation dropped.
fn slug(title: &str) -> String {
    title
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

fn check_fields(what: &str, s: &Section, problems: &mut Vec<String>) {
    for f in FIELDS {
        match s.fields.get(f) {
            None => problems.push(format!("{what} (line {}): no {f} field", s.line)),
            Some(v) if v.is_empty() => problems.push(format!("{what} (line {}): empty {f} field", s.line)),
            _ => {}
        }
    }
    if let Some(c) = s.fields.get("Compatibility") {
        if !COMPAT.iter().any(|p| c.starts_with(p)) {
            problems.push(format!("{what} (line {}): Compatibility must start with one of {COMPAT:?}", s.line));
        }
    }
}

#[test]
fn every_directive_is_documented_and_every_documented_directive_exists() {
    let table = command_table();
    let (docs, _, _) = manual();
    let code: BTreeSet<&String> = table.keys().collect();
    let documented: BTreeSet<&String> = docs.keys().collect();
    assert!(code.len() >= 16, "parsed only {} directives from c-shim/mod_fastcgi.c", code.len());
    assert_eq!(
        code.difference(&documented).collect::<Vec<_>>(),
        Vec::<&&String>::new(),
        "directives in c-shim/mod_fastcgi.c without a section in docs/directives.md"
    );
    assert_eq!(
        documented.difference(&code).collect::<Vec<_>>(),
        Vec::<&&String>::new(),
        "sections of docs/directives.md for directives the module does not have"
    );
    let mut problems = Vec::new();
    for (name, s) in &docs {
        check_fields(name, s, &mut problems);
        let kind = &table[name];
        let want = context_of(kind);
        if s.fields.get("Context").map(String::as_str) != Some(want) {
            problems.push(format!("{name} (line {}): Context should be \"{want}\" ({kind})", s.line));
        }
        let syntax = s.fields.get("Syntax").cloned().unwrap_or_default();
        if !syntax.starts_with(&format!("`{name}")) {
            problems.push(format!("{name} (line {}): Syntax does not start with the directive", s.line));
        }
    }
    assert!(problems.is_empty(), "docs/directives.md:\n{}", problems.join("\n"));
}

#[test]
fn every_option_is_documented_where_the_parser_accepts_it() {
    let table = command_table();
    let code = code_options(&table);
    let (_, docs, _) = manual();
    let in_code: BTreeSet<&String> = code.keys().collect();
    let documented: BTreeSet<&String> = docs.keys().collect();
    assert_eq!(
        in_code.difference(&documented).collect::<Vec<_>>(),
        Vec::<&&String>::new(),
        "options the parser accepts without a section in docs/directives.md"
    );
    assert_eq!(
        documented.difference(&in_code).collect::<Vec<_>>(),
        Vec::<&&String>::new(),
        "sections of docs/directives.md for options the parser does not accept"
    );
    let mut problems = Vec::new();
    for (name, s) in &docs {
        check_fields(name, s, &mut problems);
        // The Context lists the canonical directives; aliases accept the same.
        let listed: BTreeSet<String> =
            s.fields.get("Context").map(|c| c.split(',').map(|d| d.trim().to_string()).collect()).unwrap_or_default();
        let unknown: Vec<&String> = listed.iter().filter(|d| !table.contains_key(*d)).collect();
        if !unknown.is_empty() {
            problems.push(format!("{name} (line {}): Context names no such directive: {unknown:?}", s.line));
        }
        if with_aliases(listed.iter().map(String::as_str), &table) != code[name] {
            problems.push(format!(
                "{name} (line {}): Context says {listed:?}, the parser accepts it in {:?}",
                s.line, code[name]
            ));
        }
        let syntax = s.fields.get("Syntax").cloned().unwrap_or_default().to_ascii_lowercase();
        if !syntax.starts_with(&format!("`{name}")) {
            problems.push(format!("{name} (line {}): Syntax does not start with the option", s.line));
        }
    }
    assert!(problems.is_empty(), "docs/directives.md:\n{}", problems.join("\n"));
}

#[test]
fn links_inside_the_manual_lead_to_sections() {
    let doc = source("docs/directives.md");
    let (_, _, anchors) = manual();
    let broken: Vec<&str> =
        doc.split("](#").skip(1).filter_map(|rest| rest.split(')').next()).filter(|a| !anchors.contains(*a)).collect();
    assert!(broken.is_empty(), "links to missing sections of docs/directives.md: {broken:?}");
}

// ------------------------------------------------------------ defaults

/// The defaults the manual gives as a directive line (`| Default: |
/// \`-idle-timeout 30\``): lower-case name → value.
fn manual_defaults() -> BTreeMap<String, String> {
    let (directives, options, _) = manual();
    let mut out = BTreeMap::new();
    for (name, s) in directives.iter().chain(options.iter()) {
        let Some(default) = s.fields.get("Default") else { continue };
        let Some(quoted) = default.strip_prefix('`').and_then(|d| d.split('`').next()) else { continue };
        let Some((n, value)) = quoted.split_once(' ') else { continue };
        assert!(
            n.eq_ignore_ascii_case(name),
            "docs/directives.md (line {}): the Default of {name} names {n}: {default}",
            s.line
        );
        out.insert(name.to_ascii_lowercase(), value.trim().to_string());
    }
    out
}

struct AnyFile;

impl mod_fastcgi_rs::config::Host for AnyFile {
    fn check_executable(&self, _: &str) -> Result<(), String> {
        Ok(())
    }
    fn env(&self, _: &str) -> Option<String> {
        None
    }
}

fn builder() -> mod_fastcgi_rs::config::Builder {
    mod_fastcgi_rs::config::Builder::new("/etc/apache2".into(), "/run/apache2/fastcgi".into(), Box::new(AnyFile))
}

/// The configuration `directive` gives with `extra` options after the
/// arguments it needs anyway.
fn configured(directive: &str, extra: &str) -> Result<mod_fastcgi_rs::config::Config, String> {
    let mut b = builder();
    match directive {
        "FastCgiServer" => b.static_server(directive, &format!("/srv/app.fcgi {extra}"))?,
        "FastCgiExternalServer" => {
            b.external_server(directive, &format!("/srv/ext.fcgi -socket /run/ext.sock {extra}"))?
        }
        "FastCgiConfig" if extra.is_empty() => {}
        "FastCgiConfig" => b.dynamic_config(directive, extra)?,
        "FastCgiChunkedBodyMax" if !extra.is_empty() => b.chunked_body_max(directive, extra)?,
        "FastCgiResponseBuffer" if !extra.is_empty() => b.response_buffer(directive, extra)?,
        "FastCgiResponseSpoolMax" if !extra.is_empty() => b.response_spool_max(directive, extra)?,
        "FastCgiScoreboard" if !extra.is_empty() => b.scoreboard(directive, extra)?,
        "FastCgiLogNotes" if !extra.is_empty() => b.log_notes(directive, extra)?,
        "FastCgiRequestBuffer" if !extra.is_empty() => b.request_buffer(directive, extra)?,
        "FastCgiRequestSpoolMax" if !extra.is_empty() => b.request_spool_max(directive, extra)?,
        "FastCgiSpoolBudget" if !extra.is_empty() => b.spool_budget(directive, extra)?,
        "FastCgiWrapper" | "FastCgiSuexec" if !extra.is_empty() => b.wrapper(directive, extra)?,
        "FastCgiChunkedBodyMax"
        | "FastCgiResponseBuffer"
        | "FastCgiResponseSpoolMax"
        | "FastCgiScoreboard"
        | "FastCgiLogNotes"
        | "FastCgiRequestBuffer"
        | "FastCgiRequestSpoolMax"
        | "FastCgiSpoolBudget"
        | "FastCgiWrapper"
        | "FastCgiSuexec" => {}
        other => return Err(format!("no way to check {other} here")),
    }
    Ok(b.build())
}

/// Each default the manual gives is the parser's: the configuration with
/// `-option DEFAULT` (or `Directive DEFAULT`) written out is the one
/// without it, for every directive the option's Context lists.
#[test]
fn the_manuals_defaults_are_the_parsers() {
    let (directives, options, _) = manual();
    let defaults = manual_defaults();
    let mut problems = Vec::new();
    let mut checked = 0;
    for (name, value) in &defaults {
        if let Some(s) = options.get(name) {
            let context = s.fields.get("Context").cloned().unwrap_or_default();
            // An option that is only valid with another one gets it on both sides.
            let needs = match name.as_str() {
                "-bind" => "-port 9000",
                "-queue-timeout" | "-max-queued" => "-max-in-flight 4",
                _ => "",
            };
            for directive in context.split(',').map(str::trim) {
                let with = configured(directive, &format!("{needs} {name} {value}"));
                match (configured(directive, needs), with) {
                    (Ok(base), Ok(with)) if base == with => checked += 1,
                    (Ok(_), Ok(_)) => problems.push(format!(
                        "{name} (line {}): `{name} {value}` in {directive} is not what {directive} has without it",
                        s.line
                    )),
                    (base, with) => problems.push(format!(
                        "{name} (line {}): {directive}: {:?} / with `{name} {value}`: {:?}",
                        s.line,
                        base.err(),
                        with.err()
                    )),
                }
            }
        } else if let Some((canonical, s)) = directives.iter().find(|(d, _)| d.eq_ignore_ascii_case(name)) {
            if canonical.ends_with("Authoritative") {
                // Per directory: each of the three is On unless turned off.
                let mut dir = mod_fastcgi_rs::config::DirConfig::default();
                for phase in 0..3 {
                    let set = mod_fastcgi_rs::config::Builder::auth_authoritative(&mut dir, phase, canonical, value);
                    if set.is_err() {
                        problems.push(format!("{canonical} (line {}): {set:?}", s.line));
                    }
                }
                if dir.authoritative != mod_fastcgi_rs::config::DirConfig::default().authoritative {
                    problems.push(format!("{canonical} (line {}): `{canonical} {value}` is not the default", s.line));
                }
                checked += 1;
                continue;
            }
            if canonical == "FastCgiRequestBuffering" {
                // Per directory too.
                let mut dir = mod_fastcgi_rs::config::DirConfig::default();
                let set = mod_fastcgi_rs::config::Builder::request_buffering(&mut dir, canonical, value);
                if set.is_err()
                    || dir.buffers_requests() != mod_fastcgi_rs::config::DirConfig::default().buffers_requests()
                {
                    problems.push(format!("{canonical} (line {}): `{canonical} {value}` is not the default", s.line));
                }
                checked += 1;
                continue;
            }
            if canonical == "FastCgiIpcDir" {
                // `<DefaultRuntimeDir>/fastcgi`: httpd's, not a value to write.
                continue;
            }
            match (configured(canonical, ""), configured(canonical, value)) {
                (Ok(base), Ok(with)) if base == with => checked += 1,
                (base, with) => problems.push(format!(
                    "{canonical} (line {}): `{canonical} {value}` is not the default ({:?} / {:?})",
                    s.line,
                    base.err(),
                    with.err()
                )),
            }
        }
    }
    assert!(problems.is_empty(), "docs/directives.md's defaults:\n{}", problems.join("\n"));
    assert!(checked >= 30, "only {checked} defaults checked: did docs/directives.md's Default fields change shape?");
}

/// A default quoted in a guide: where, the name (lower case) and the value.
#[derive(Debug)]
struct Quote {
    at: String,
    name: String,
    value: String,
}

/// The defaults README.md and docs/*.md (but the manual) quote: a
/// backticked `-option VALUE` or `Directive VALUE` next to the word
/// "default"; a backticked name followed by a value in parentheses
/// (`` `FastCgiResponseBuffer` (1M) ``, `` `-resolve-interval` (30 s) ``);
/// a backticked name, then a backticked value "by default"
/// (`` (`-balance`): `least-busy` by default ``).
fn quoted_defaults(known: &BTreeMap<String, String>) -> Vec<Quote> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![root.join("README.md")];
    let mut docs: Vec<_> = fs::read_dir(root.join("docs"))
        .expect("docs/")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "md") && !p.ends_with("directives.md"))
        .collect();
    docs.sort();
    files.extend(docs);
    let mut out = Vec::new();
    for file in files {
        let text = fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let rel = file.strip_prefix(root).unwrap_or(&file).display().to_string();
        let mut fenced = false;
        for (n, line) in text.lines().enumerate() {
            if line.trim_start().starts_with("```") {
                fenced = !fenced;
                continue;
            }
            if fenced {
                continue;
            }
            // Backticked spans with their byte ranges.
            let ticks: Vec<usize> = line.match_indices('`').map(|(i, _)| i).collect();
            let spans: Vec<(usize, usize)> = ticks.chunks_exact(2).map(|p| (p[0] + 1, p[1])).collect();
            let lower = line.to_ascii_lowercase();
            for (k, &(from, to)) in spans.iter().enumerate() {
                let words: Vec<&str> = line[from..to].split_whitespace().collect();
                let at = format!("{rel}:{}", n + 1);
                let near = |a: usize, b: usize| lower[a.min(lower.len())..b.min(lower.len())].contains("default");
                // `[Directive ]-name VALUE` or `Directive VALUE`, with "default" close by.
                if let Some(i) = words.iter().position(|w| known.contains_key(&w.to_ascii_lowercase())) {
                    if i + 1 < words.len() {
                        let name = words[i].to_ascii_lowercase();
                        let value = words[i + 1..].join(" ");
                        let takes_value = !(value.starts_with('-') && known.contains_key(&value.to_ascii_lowercase()));
                        if takes_value && (near(to, to + 60) || near(from.saturating_sub(30), from)) {
                            out.push(Quote { at, name, value });
                        }
                        continue;
                    }
                    let name = words[i].to_ascii_lowercase();
                    let after = &line[to + 1..];
                    // `name` (VALUE): a number, a size or seconds.
                    if let Some(inner) = after.strip_prefix(" (").and_then(|r| r.split([')', ',', ';']).next()) {
                        let value = inner.trim().to_string();
                        if normal(&value).chars().all(|c| c.is_ascii_digit()) && !value.is_empty() {
                            out.push(Quote { at, name, value });
                        }
                        continue;
                    }
                    // (`name`): `VALUE` by default
                    if let Some(&(vfrom, vto)) = spans.get(k + 1) {
                        let between = &line[to + 1..vfrom - 1];
                        if between.len() <= 4 && lower[vto + 1..].trim_start().starts_with("by default") {
                            out.push(Quote { at, name, value: line[vfrom..vto].to_string() });
                        }
                    }
                }
            }
        }
    }
    out
}

/// A value as a number where it is one: seconds without their unit
/// ("30 s"), sizes in bytes ("1M", "1 MiB", "64 KiB"); else as it is.
fn normal(value: &str) -> String {
    let v = value.trim();
    let digits = v.len() - v.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let (number, unit) = v.split_at(digits);
    let Ok(n) = number.parse::<u64>() else { return v.to_string() };
    let scale: u64 = match unit.trim() {
        "" | "s" | "sec" | "seconds" => 1,
        "K" | "k" | "KiB" | "KB" => 1 << 10,
        "M" | "m" | "MiB" | "MB" => 1 << 20,
        "G" | "g" | "GiB" | "GB" => 1 << 30,
        _ => return v.to_string(),
    };
    n.saturating_mul(scale).to_string()
}

/// What the guides say a default is, the manual says too (and so the
/// parser, above): README.md, docs/migrating.md, docs/behaviour.md ...
#[test]
fn defaults_the_guides_quote_are_the_manuals() {
    let defaults = manual_defaults();
    let quotes = quoted_defaults(&defaults);
    let wrong: Vec<String> = quotes
        .iter()
        .filter(|q| defaults.get(&q.name).map(|d| normal(d)) != Some(normal(&q.value)))
        .map(|q| {
            format!("{}: `{} {}`, the manual's default is `{} {}`", q.at, q.name, q.value, q.name, defaults[&q.name])
        })
        .collect();
    assert!(wrong.is_empty(), "defaults quoted wrong:\n{}", wrong.join("\n"));
    eprintln!("{} quoted defaults checked: {quotes:?}", quotes.len());
    let names: BTreeSet<&str> = quotes.iter().map(|q| q.name.as_str()).collect();
    for want in ["fastcgiresponsebuffer", "-balance", "-resolve-interval"] {
        assert!(
            names.contains(want),
            "no quote of {want}'s default found (quotes: {quotes:#?}): did the guides change?"
        );
    }
}
