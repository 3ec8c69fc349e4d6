//! Request bodies through our module, byte for byte (issue 9: while our
//! handler reads a body, the client socket is read in 64 KiB pieces instead
//! of APR's 8000 bytes, and back to 8000 after it). Sizes around both read
//! sizes, a chunked body, a large POST with a second request pipelined in the
//! same write, and a static file after a POST on the same keep-alive
//! connection; under mpm_event and mpm_prefork. The backend's `/mirror`
//! sends the body back.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::sha256::pattern;
use common::util::write_file;
use common::{Apache, Body, FaultServer, Mpm, Request, TestDir};

const STATIC: &[u8] = b"a static file after a request body\n";

/// Sizes around APR's read size (8000) and ours (65536), and 1 MiB + 3.
const SIZES: &[usize] = &[0, 1, 7999, 8000, 8001, 65535, 65536, 65537, (1 << 20) + 3];

/// One response read off a keep-alive connection.
struct Answer {
    status: u16,
    body: Vec<u8>,
}

/// Reads one response (Content-Length or chunked body) from `s`; `buf`
/// carries bytes read past it to the next call.
fn read_answer(s: &mut TcpStream, buf: &mut Vec<u8>) -> Answer {
    let fill = |s: &mut TcpStream, buf: &mut Vec<u8>| {
        let mut tmp = [0u8; 64 * 1024];
        let n = s.read(&mut tmp).expect("read a response");
        assert!(n > 0, "connection closed in a response; so far: {:?}", String::from_utf8_lossy(buf));
        buf.extend_from_slice(&tmp[..n]);
    };
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        fill(s, buf);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    buf.drain(..head_end);
    let status: u16 = head.split(' ').nth(1).and_then(|v| v.parse().ok()).expect("a status line");
    let header = |name: &str| {
        head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    };
    let mut body = Vec::new();
    if let Some(len) = header("Content-Length").and_then(|v| v.parse::<usize>().ok()) {
        while buf.len() < len {
            fill(s, buf);
        }
        body.extend(buf.drain(..len));
    } else if header("Transfer-Encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        loop {
            let line_end = loop {
                if let Some(i) = buf.windows(2).position(|w| w == b"\r\n") {
                    break i;
                }
                fill(s, buf);
            };
            let size_text = String::from_utf8_lossy(&buf[..line_end]).into_owned();
            let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16).expect("chunk size");
            buf.drain(..line_end + 2);
            if size == 0 {
                while !buf.starts_with(b"\r\n") {
                    if buf.len() < 2 {
                        fill(s, buf);
                    } else {
                        panic!("trailers in a test response");
                    }
                }
                buf.drain(..2);
                break;
            }
            while buf.len() < size + 2 {
                fill(s, buf);
            }
            body.extend(buf.drain(..size));
            buf.drain(..2);
        }
    }
    Answer { status, body }
}

fn post_head(path: &str, len: usize, close: bool) -> Vec<u8> {
    let conn = if close { "close" } else { "keep-alive" };
    format!("POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len}\r\nConnection: {conn}\r\n\r\n")
        .into_bytes()
}

/// POSTs `body` to the mirror on `s` and reads the answer.
fn mirror(s: &mut TcpStream, buf: &mut Vec<u8>, body: &[u8], close: bool) -> Answer {
    let mut out = post_head("/fault/mirror", body.len(), close);
    out.extend_from_slice(body);
    s.write_all(&out).expect("write a POST");
    read_answer(s, buf)
}

fn connect(apache: &Apache) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", apache.port)).expect("connect to Apache");
    s.set_read_timeout(Some(Duration::from_secs(30))).expect("read timeout");
    s
}

fn bodies(mpm: Mpm) {
    let t = TestDir::new(&format!("request_body_{mpm:?}"));
    let fault = FaultServer::start(&t.sock("fault.sock"));
    let apache = Apache::builder(&t)
        .mpm(mpm)
        .config(&format!(
            "FastCgiExternalServer {} -socket {}",
            t.htdocs().join("fault").display(),
            fault.path().display()
        ))
        .start();
    write_file(&t.htdocs().join("static.txt"), STATIC);

    // Each size, on a connection of its own.
    for (i, &n) in SIZES.iter().enumerate() {
        let body = pattern(n, 100 + i as u64);
        let r = apache.request(Request::post("/fault/mirror", Body::Fixed(body.clone())));
        assert_eq!(r.status, 200, "{mpm:?} POST of {n} bytes: {}", r.text());
        assert!(r.body == body, "{mpm:?} POST of {n} bytes: {} bytes came back, not the same", r.body.len());
    }

    // Chunked.
    let body = pattern(300_001, 7);
    let r = apache.request(Request::post("/fault/mirror", Body::chunked(&body, 10_000)));
    assert_eq!(r.status, 200, "{mpm:?} chunked POST: {}", r.text());
    assert!(r.body == body, "{mpm:?} chunked POST: {} bytes came back, not the same", r.body.len());

    // A large POST and a second one pipelined in the same write, on one
    // keep-alive connection.
    let big = pattern((1 << 20) + 3, 11);
    let small = pattern(8001, 12);
    let mut s = connect(&apache);
    let mut out = post_head("/fault/mirror", big.len(), false);
    out.extend_from_slice(&big);
    out.extend_from_slice(&post_head("/fault/mirror", small.len(), true));
    out.extend_from_slice(&small);
    let writer = {
        let mut w = s.try_clone().expect("clone the stream");
        std::thread::spawn(move || w.write_all(&out))
    };
    let mut buf = Vec::new();
    let a = read_answer(&mut s, &mut buf);
    assert_eq!(a.status, 200, "{mpm:?} pipelined big POST");
    assert!(a.body == big, "{mpm:?} pipelined big POST: {} bytes came back, not the same", a.body.len());
    let b = read_answer(&mut s, &mut buf);
    assert_eq!(b.status, 200, "{mpm:?} pipelined second POST");
    assert!(b.body == small, "{mpm:?} pipelined second POST: {} bytes came back, not the same", b.body.len());
    writer.join().expect("writer thread").expect("write the pipelined requests");

    // On one connection: a POST, a chunked POST, then a static file (read
    // with the stock read size again), then a POST again.
    let mut s = connect(&apache);
    let mut buf = Vec::new();
    let first = pattern(65537, 21);
    let a = mirror(&mut s, &mut buf, &first, false);
    assert!(a.status == 200 && a.body == first, "{mpm:?} POST on a keep-alive connection: {}", a.status);
    let chunked = pattern(100_000, 22);
    let mut out = b"POST /fault/mirror HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for piece in chunked.chunks(30_000) {
        out.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        out.extend_from_slice(piece);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    s.write_all(&out).expect("write a chunked POST");
    let a = read_answer(&mut s, &mut buf);
    assert!(a.status == 200 && a.body == chunked, "{mpm:?} chunked POST on a keep-alive connection: {}", a.status);
    s.write_all(b"GET /static.txt HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").expect("write a GET");
    let a = read_answer(&mut s, &mut buf);
    assert!(a.status == 200 && a.body == STATIC, "{mpm:?} static file after a POST: {}", a.status);
    let last = pattern(8000, 23);
    let a = mirror(&mut s, &mut buf, &last, true);
    assert!(a.status == 200 && a.body == last, "{mpm:?} POST after a static file: {}", a.status);
    assert!(buf.is_empty(), "{mpm:?}: bytes after the last response");

    assert!(fault.protocol_errors().is_empty(), "{:?}", fault.protocol_errors());
    apache.assert_alive();
}

#[test]
fn bodies_under_event() {
    bodies(Mpm::Event);
}

#[test]
fn bodies_under_prefork() {
    bodies(Mpm::Prefork);
}
