//! Finding where an application's CGI header block ends. The block itself is
//! parsed by httpd's own scanner (through [`super::Client::apply_headers`]),
//! so Status, Location and Set-Cookie behave exactly as with mod_cgi.

/// The largest header block accepted; more is a broken application.
pub(super) const MAX_HEADER_BLOCK: usize = 128 * 1024;

/// Index just past the empty line that ends the header block in `buf`
/// (`\n\n`, `\n\r\n`, or an empty first line), looking no earlier than
/// `from` (where the previous search stopped, less a line ending's length).
pub(super) fn block_end(buf: &[u8], from: usize) -> Option<usize> {
    match buf {
        [b'\n', ..] => return Some(1),
        [b'\r', b'\n', ..] => return Some(2),
        _ => {}
    }
    let start = from.saturating_sub(2);
    for nl in memchr::memchr_iter(b'\n', buf.get(start..)?).map(|i| i + start) {
        match buf.get(nl + 1..).unwrap_or_default() {
            [b'\n', ..] => return Some(nl + 2),
            [b'\r', b'\n', ..] => return Some(nl + 3),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::block_end;

    #[test]
    fn crlf_lf_and_empty_blocks() {
        assert_eq!(block_end(b"Status: 200\r\n\r\nbody", 0), Some(15));
        assert_eq!(block_end(b"A: b\n\nbody", 0), Some(6));
        assert_eq!(block_end(b"A: b\nC: d\n\n", 0), Some(11));
        assert_eq!(block_end(b"\r\nbody", 0), Some(2));
        assert_eq!(block_end(b"\nbody", 0), Some(1));
        assert_eq!(block_end(b"A: b\r\nC: d\r\n", 0), None);
        assert_eq!(block_end(b"A: b\r\n\r", 0), None);
    }

    #[test]
    fn split_arrivals_are_found_by_resuming() {
        let whole = b"Content-Type: text/plain\r\nX: y\r\n\r\nhello";
        let want = block_end(whole, 0);
        for cut in 1..whole.len() {
            let first = block_end(&whole[..cut], 0);
            let got = first.or_else(|| block_end(whole, cut));
            assert_eq!(got, want, "cut at {cut}");
        }
    }
}
