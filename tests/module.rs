//! The built shared object itself.

mod common;

use std::process::Command;

/// Rust is linked statically and only `fastcgi_module` is exported.
#[test]
fn exports_only_fastcgi_module() {
    let so = common::util::module_path();
    let out = Command::new("nm").args(["-D", "--defined-only"]).arg(&so).output().expect("run nm (binutils)");
    assert!(out.status.success(), "nm failed: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let symbols: Vec<&str> = text.lines().filter_map(|l| l.split_whitespace().nth(2)).collect();
    assert_eq!(symbols, vec!["fastcgi_module"], "dynamic symbols of {}:\n{text}", so.display());
}
