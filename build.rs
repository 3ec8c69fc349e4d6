//! Generates the httpd/APR bindings and compiles the C shim, but only when
//! the `apache` feature is on: the pure layers and their tests need neither.

use std::path::PathBuf;
use std::process::Command;

fn query(cmd: &str, args: &[&str]) -> String {
    match Command::new(cmd).args(args).output() {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).trim().to_string(),
        Ok(out) => panic!("{cmd} {args:?} failed: {}", String::from_utf8_lossy(&out.stderr)),
        Err(e) => panic!("cannot run {cmd} (install apache2-dev: make deps): {e}"),
    }
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var_os("CARGO_FEATURE_APACHE").is_none() {
        return;
    }
    println!("cargo:rerun-if-changed=c-shim");

    let mut includes = vec![PathBuf::from(query("apxs", &["-q", "INCLUDEDIR"]))];
    for tool in ["apr-1-config", "apu-1-config"] {
        for flag in query(tool, &["--includes"]).split_whitespace() {
            if let Some(dir) = flag.strip_prefix("-I") {
                includes.push(PathBuf::from(dir));
            }
        }
    }
    includes.push(PathBuf::from("c-shim"));

    let mut shim = cc::Build::new();
    shim.file("c-shim/mod_fastcgi.c").warnings(true).extra_warnings(true);
    for dir in &includes {
        shim.include(dir);
    }
    shim.flag("-D_GNU_SOURCE").flag("-Wno-unused-parameter");
    shim.compile("fastcgi_shim");

    let mut builder = bindgen::Builder::default()
        .header("c-shim/wrapper.h")
        .allowlist_function("ap_.*|apr_.*|fcgi_shim_.*")
        .allowlist_type("request_rec|server_rec|cmd_parms|conn_rec|apr_.*|ap_.*")
        .allowlist_var("ap_server_root|ap_unixd_config|AP_SQ_.*|HUGE_STRING_LEN|HTTP_.*|OK|DECLINED|DONE|APLOG_.*|M_.*|OPT_.*|NOT_IN_.*|GLOBAL_ONLY|AP_CONN_.*|APR_.*|AP_MPMQ_.*|AP_REQ_.*|AP_STATUS_.*|REQUEST_CHUNKED_.*")
        .derive_default(true)
        .layout_tests(false)
        .generate_comments(false)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()));
    for dir in &includes {
        builder = builder.clang_arg(format!("-I{}", dir.display()));
    }
    let bindings = builder.generate().expect("bindgen over httpd headers");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR set by cargo"));
    bindings.write_to_file(out.join("bindings.rs")).expect("write bindings.rs");
}
