//! Throughput of the FastCGI protocol core, std only:
//! `cargo bench --no-default-features --bench protocol`.
//!
//! Prints the decode rate of a 1 MiB STDOUT stream fed in 8 KiB reads (the
//! hot path of every response) and the cost of encoding a typical 40
//! variable PARAMS stream (paid once per request).

use std::hint::black_box;
use std::time::{Duration, Instant};

use mod_fastcgi_rs::protocol::{RequestEncoder, ResponseDecoder, ResponseEncoder, ResponseEvent};

/// Runs `f` in growing batches until a batch takes at least `min`; returns
/// the time per call of the last batch.
fn time_per_call(min: Duration, mut f: impl FnMut()) -> Duration {
    let mut n: u32 = 1;
    loop {
        let start = Instant::now();
        for _ in 0..n {
            f();
        }
        let took = start.elapsed();
        if took >= min {
            return took / n;
        }
        n = n.saturating_mul(2);
    }
}

fn decode_stdout() {
    let body: Vec<u8> = (0..1 << 20).map(|i| (i * 7) as u8).collect();
    let enc = ResponseEncoder::new(1);
    let mut stream = Vec::new();
    enc.stdout(&mut stream, &body);
    enc.stdout_end(&mut stream);
    enc.end_request(&mut stream, 0, 0);

    // Zero copy: this is the decoder's own cost, headers and bookkeeping.
    let per_stream = time_per_call(Duration::from_secs(2), || {
        let got = decode(&stream, |data| black_box(data).len());
        assert_eq!(got, body.len());
    });
    // With the consumer copying the content out, as a gateway does.
    let mut sink = Vec::with_capacity(body.len());
    let per_stream_copied = time_per_call(Duration::from_secs(2), || {
        sink.clear();
        let got = decode(&stream, |data| {
            sink.extend_from_slice(data);
            data.len()
        });
        assert_eq!(got, black_box(&sink).len());
    });
    for (what, per) in [("decoder alone (zero copy)", per_stream), ("content copied out", per_stream_copied)] {
        println!(
            "decode 1 MiB STDOUT in 8 KiB reads, {what}: {:.2} GB/s ({:.1} us per MiB)",
            stream.len() as f64 / per.as_secs_f64() / 1e9,
            per.as_secs_f64() * 1e6
        );
    }
}

/// Feeds `stream` to a decoder in 8 KiB reads, handing STDOUT content to
/// `consume`; returns the total it reports.
fn decode(stream: &[u8], mut consume: impl FnMut(&[u8]) -> usize) -> usize {
    let mut dec = ResponseDecoder::new(1);
    let mut got = 0;
    for read in black_box(stream).chunks(8192) {
        let mut input = read;
        while !input.is_empty() {
            let (n, ev) = dec.decode(input).unwrap_or((input.len(), None));
            if let Some(ResponseEvent::Stdout(data)) = ev {
                got += consume(data);
            }
            input = &input[n..];
        }
    }
    got
}

/// A CGI environment as httpd 2.4 builds it for a PHP request.
fn environment() -> Vec<(&'static [u8], &'static [u8])> {
    let env: [(&str, &str); 40] = [
        ("HTTP_HOST", "www.example.com"),
        ("HTTP_USER_AGENT", "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"),
        ("HTTP_ACCEPT", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
        ("HTTP_ACCEPT_LANGUAGE", "en-US,en;q=0.5"),
        ("HTTP_ACCEPT_ENCODING", "gzip, deflate, br"),
        ("HTTP_REFERER", "https://www.example.com/blog/2024/05/some-article-title"),
        ("HTTP_CONNECTION", "keep-alive"),
        ("HTTP_COOKIE", "PHPSESSID=8f3c1e0b9a7d4c2e; theme=dark; consent=1; _ga=GA1.2.1234567890.1700000000"),
        ("HTTP_UPGRADE_INSECURE_REQUESTS", "1"),
        ("HTTP_SEC_FETCH_DEST", "document"),
        ("HTTP_SEC_FETCH_MODE", "navigate"),
        ("HTTP_SEC_FETCH_SITE", "same-origin"),
        ("HTTP_SEC_FETCH_USER", "?1"),
        ("HTTP_CACHE_CONTROL", "max-age=0"),
        ("HTTPS", "on"),
        ("SSL_TLS_SNI", "www.example.com"),
        ("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"),
        ("SERVER_SIGNATURE", "<address>Apache/2.4.62 (Debian) Server at www.example.com Port 443</address>\n"),
        ("SERVER_SOFTWARE", "Apache/2.4.62 (Debian)"),
        ("SERVER_NAME", "www.example.com"),
        ("SERVER_ADDR", "192.0.2.10"),
        ("SERVER_PORT", "443"),
        ("REMOTE_ADDR", "198.51.100.23"),
        ("DOCUMENT_ROOT", "/var/www/example/public"),
        ("REQUEST_SCHEME", "https"),
        ("CONTEXT_PREFIX", ""),
        ("CONTEXT_DOCUMENT_ROOT", "/var/www/example/public"),
        ("SERVER_ADMIN", "webmaster@example.com"),
        ("SCRIPT_FILENAME", "/var/www/example/public/index.php"),
        ("REMOTE_PORT", "51234"),
        ("GATEWAY_INTERFACE", "CGI/1.1"),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("REQUEST_METHOD", "GET"),
        ("QUERY_STRING", "page=2&sort=date&filter=rust"),
        ("REQUEST_URI", "/blog/index.php/archive?page=2&sort=date&filter=rust"),
        ("SCRIPT_NAME", "/blog/index.php"),
        ("PATH_INFO", "/archive"),
        ("PATH_TRANSLATED", "/var/www/example/public/archive"),
        ("REDIRECT_STATUS", "200"),
        ("TZ", "UTC"),
    ];
    env.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())).collect()
}

fn encode_params() {
    let env = environment();
    let enc = RequestEncoder::new(1);
    let mut out = Vec::with_capacity(4096);
    let mut w = enc.params(&mut out);
    for (name, value) in &env {
        w.pair(name, value);
    }
    w.finish();
    let size = out.len();

    let per = time_per_call(Duration::from_secs(2), || {
        out.clear();
        let mut w = enc.params(&mut out);
        for (name, value) in black_box(&env) {
            w.pair(name, value);
        }
        w.finish();
        black_box(&out);
    });
    println!("encode 40-variable PARAMS stream ({size} bytes): {} ns", per.as_nanos());
}

fn main() {
    decode_stdout();
    encode_params();
}
