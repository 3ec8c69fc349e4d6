//! An application's CGI header block: where it ends, and whether it can be
//! passed on faithfully. The block itself is applied by httpd's own scanner
//! (through [`super::Client::apply_headers`]), so Status, Location and
//! Set-Cookie behave exactly as with mod_cgi; what that scanner cannot
//! represent (a NUL inside a C string) or would let httpd turn into
//! something the application did not send is refused here first.

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

/// Makes the header block `block[..end]` (up to and including its blank
/// line) what httpd's scanner is to see, in place, and returns where it
/// now ends; what followed it (body bytes) moves up behind it. A CR that
/// ends a line stays (the scanner drops it with the LF, as for mod_cgi);
/// every other CR is removed, so a bare CR inside a value can neither end
/// a line nor reach the client. Err names what cannot be passed on, for
/// the log line (`error parsing headers: ...`), and the request answers
/// 500 as with the original: a NUL byte (the scanner's C strings would
/// silently cut the value), a line with no colon, or a name that is empty
/// or holds white space (an obs-fold continuation line, `Name : value`).
pub(super) fn sanitize(block: &mut Vec<u8>, end: usize) -> Result<usize, String> {
    let mut end = end.min(block.len());
    if memchr::memchr_iter(b'\r', &block[..end]).any(|cr| block.get(cr + 1) != Some(&b'\n')) {
        end = drop_bare_crs(block, end);
    }
    let head = &block[..end];
    // NUL bytes are rare: lines are searched for one only if the block has one.
    let has_nul = memchr::memchr(0, head).is_some();
    let mut from = 0;
    while let Some(rest) = head.get(from..).filter(|rest| !matches!(rest, [] | [b'\n', ..] | [b'\r', b'\n', ..])) {
        // The name, up to the colon, byte by byte: it is short, and each of
        // its bytes is checked anyway.
        let name_len = rest.iter().position(|&b| NAME_END[usize::from(b)]).unwrap_or(rest.len());
        let line_len = memchr::memchr(b'\n', rest).unwrap_or(rest.len());
        let line = &rest[..line_len];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        from += line_len + 1;
        let name = &rest[..name_len];
        if rest.get(name_len) != Some(&b':') {
            // White space or a NUL in the name, or no colon at all.
            let Some(colon) = memchr::memchr(b':', line) else {
                return Err(format!("malformed header '{}'", shown(line)));
            };
            let name = &line[..colon];
            if has_nul && line.contains(&0) {
                return Err(format!("NUL byte in header '{}'", shown(name)));
            }
            return Err(format!("invalid header name '{}'", shown(name)));
        }
        if has_nul && line.contains(&0) {
            return Err(format!("NUL byte in header '{}'", shown(name)));
        }
        if name.is_empty() {
            return Err(format!("invalid header name '{}'", shown(name)));
        }
    }
    Ok(end)
}

/// The bytes that end a header name in [`sanitize`]'s scan: the colon, and
/// what a name must not hold before it (white space, CR, LF, NUL).
const NAME_END: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    let ends = *b": \t\r\n\0";
    while i < ends.len() {
        t[ends[i] as usize] = true;
        i += 1;
    }
    t
};

/// Removes from `block[..end]` every CR that does not end a line, moving
/// what follows up; returns the new end.
#[cold]
fn drop_bare_crs(block: &mut Vec<u8>, end: usize) -> usize {
    let mut kept = 0;
    for at in 0..end {
        let b = block[at];
        if b != b'\r' || block.get(at + 1) == Some(&b'\n') {
            block[kept] = b;
            kept += 1;
        }
    }
    block.drain(kept..end);
    kept
}

/// The `name: value` pairs of a block that passed [`sanitize`], value
/// trimmed as httpd's scanner trims it.
pub(super) fn fields(clean: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    let lines = clean.split(|&b| b == b'\n').map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    lines.take_while(|l| !l.is_empty()).filter_map(|line| {
        let colon = memchr::memchr(b':', line)?;
        Some((&line[..colon], line[colon + 1..].trim_ascii()))
    })
}

/// At most 30 bytes of `bytes` for a log line (httpd's scanner shows as
/// many), non-printable ones escaped.
fn shown(bytes: &[u8]) -> String {
    bytes[..bytes.len().min(30)].escape_ascii().to_string()
}

#[cfg(test)]
mod tests {
    use super::{block_end, fields, sanitize};

    /// The block `bytes` (up to its blank line) sanitized, with what follows.
    fn clean(bytes: &[u8]) -> Result<Vec<u8>, String> {
        let mut block = bytes.to_vec();
        let end = block_end(&block, 0).unwrap_or(block.len());
        let kept = sanitize(&mut block, end)?;
        assert_eq!(block.len(), bytes.len() - (end - kept));
        Ok(block)
    }

    #[test]
    fn sanitize_removes_bare_crs_and_keeps_long_lines_whole() {
        let long = "v".repeat(200_000);
        let block = format!("Content-Type: text/plain\r\nX-Long: {long}\r\nX-Cr: a\rb\r\r\n\r\n");
        let clean = clean(format!("{block}body\r\n").as_bytes()).unwrap();
        assert_eq!(clean, format!("Content-Type: text/plain\r\nX-Long: {long}\r\nX-Cr: ab\r\n\r\nbody\r\n").into_bytes());

        let got: Vec<_> = fields(&clean).collect();
        assert_eq!(got.len(), 3);
        assert_eq!(got[1], (&b"X-Long"[..], long.as_bytes()));
        assert_eq!(got[2], (&b"X-Cr"[..], &b"ab"[..]));
    }

    #[test]
    fn a_block_with_only_line_ending_crs_stays_as_it_is() {
        let plain = b"A: b\r\nC: d\r\n\r\nbody\r";
        assert_eq!(clean(plain).unwrap(), plain);
    }

    #[test]
    fn sanitize_refuses_what_cannot_pass_faithfully() {
        let err = |b: &[u8]| clean(b).unwrap_err();
        assert_eq!(err(b"X-Bad: a\0b\r\n\r\n"), "NUL byte in header 'X-Bad'");
        assert_eq!(err(b"Content-Type: text/plain\r\ngarbage here\r\n\r\n"), "malformed header 'garbage here'");
        assert_eq!(err(b"A: b\r\n  folded: on\r\n\r\n"), "invalid header name '  folded'");
        assert_eq!(err(b"Status : 200\n\n"), "invalid header name 'Status '");
        assert_eq!(err(b": no name\n\n"), "invalid header name ''");
        assert_eq!(err(b"HTTP/1.0 200 OK\r\n\r\n"), "malformed header 'HTTP/1.0 200 OK'");
        assert_eq!(
            err(format!("{}\n\n", "x".repeat(100)).as_bytes()),
            format!("malformed header '{}'", "x".repeat(30))
        );
        assert_eq!(err(b"X\x01\x02: \0\n\n"), "NUL byte in header 'X\\x01\\x02'");
        assert_eq!(err(b"X\0Y: v\n\n"), "NUL byte in header 'X\\x00Y'");
        assert_eq!(err(b"X\0Y v\n\n"), "malformed header 'X\\x00Y v'");
        assert_eq!(err(b": \0\r\n\r\n"), "NUL byte in header ''");
        assert_eq!(err(b"A: b\r\nbare\rcr\r\n\r\n"), "malformed header 'barecr'");
        assert_eq!(err(b"A\tB: c\n\n"), "invalid header name 'A\\tB'");
        // Only the block is checked: what follows the blank line is body.
        assert!(clean(b"A: b\n\n").is_ok());
        assert_eq!(clean(b"\r\n").unwrap(), b"\r\n");
    }

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
