//! Self-checks of the test harness (no module involved): the SHA-256, JSON
//! and HTTP client helpers the other suites rely on.

mod common;

use common::sha256::{fnv1a64_hex, sha256_hex, Sha256};
use common::{json, Apache, Request, TestDir};

#[test]
fn sha256_known_vectors() {
    assert_eq!(sha256_hex(b""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    assert_eq!(sha256_hex(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    assert_eq!(
        sha256_hex(b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
    );
    // Incremental updates across block boundaries equal one-shot hashing.
    let data = common::sha256::pattern(100_003, 7);
    let mut s = Sha256::new();
    for c in data.chunks(61) {
        s.update(c);
    }
    assert_eq!(common::sha256::hex(&s.finish()), sha256_hex(&data));
    // A million 'a's (FIPS 180-2 test vector).
    assert_eq!(sha256_hex(&vec![b'a'; 1_000_000]), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

#[test]
fn fnv_known_vectors() {
    assert_eq!(fnv1a64_hex(b""), "cbf29ce484222325");
    assert_eq!(fnv1a64_hex(b"a"), "af63dc4c8601ec8c");
}

#[test]
fn json_flat_objects() {
    let m = json::parse_object(r#"{"A": "x\/y\n", "B":"\u00e9\ud83d\ude00", "C": 12, "D": "q\"q"}"#).unwrap();
    assert_eq!(m["A"], "x/y\n");
    assert_eq!(m["B"], "é😀");
    assert_eq!(m["C"], "12");
    assert_eq!(m["D"], "q\"q");
    assert!(json::parse_object("{\"a\": }").is_err());
}

/// The client against a plain Apache (no FastCGI): static file, HEAD, 404,
/// and a chunked request body.
#[test]
fn http_client_against_plain_apache() {
    let t = TestDir::new("harness_http");
    common::util::write_file(&t.htdocs().join("f.txt"), "static file\n");
    let apache = Apache::builder(&t).without_fastcgi().start();
    let r = apache.get("/f.txt");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"static file\n");
    assert!(r.complete);
    let r = apache.request(Request::new("HEAD", "/f.txt"));
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());
    let r = apache.get("/nope.txt");
    assert_eq!(r.status, 404);
    assert!(r.complete);
    // A chunked body to a static file: httpd reads/discards it and answers.
    let body = common::sha256::pattern(10_000, 3);
    let r = apache.request(Request::post("/f.txt", common::Body::chunked(&body, 1000)));
    assert!(r.status == 200 || r.status == 405, "status {}", r.status);
}
