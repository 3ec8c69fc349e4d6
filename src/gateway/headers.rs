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
    let mut verdict = scan(&block[..end]);
    // A bare CR goes before anything else is judged, as if never sent: a
    // block that fails is judged again without any.
    if verdict.is_err() {
        end = drop_bare_crs(block, end);
        verdict = scan(&block[..end]);
    }
    match verdict {
        Err(Flaw::Line(from)) => Err(refusal(&block[..end], from)),
        Ok(()) | Err(Flaw::BareCr) => Ok(end),
    }
}

/// What [`scan`] found first.
enum Flaw {
    /// A CR that does not end a line.
    BareCr,
    /// The line starting at this offset cannot be passed on.
    Line(usize),
}

/// Checks the header lines of `head` up to its blank line in one pass: a
/// table lookup per byte, the name up to its colon, the value up to its LF.
fn scan(head: &[u8]) -> Result<(), Flaw> {
    let mut from = 0;
    loop {
        let rest = head.get(from..).unwrap_or_default();
        if matches!(rest, [] | [b'\n', ..] | [b'\r', b'\n', ..]) {
            return Ok(());
        }
        let Some(colon) = rest.iter().position(|&b| NAME_END[usize::from(b)]) else {
            return Err(Flaw::Line(from));
        };
        match rest[colon] {
            b':' if colon > 0 => {}
            b'\r' if rest.get(colon + 1) != Some(&b'\n') => return Err(Flaw::BareCr),
            _ => return Err(Flaw::Line(from)),
        }
        let mut at = colon + 1;
        loop {
            let Some(i) = rest[at..].iter().position(|&b| VALUE_END[usize::from(b)]) else {
                return Ok(());
            };
            at += i;
            match rest[at] {
                b'\n' => break,
                b'\r' if rest.get(at + 1) == Some(&b'\n') => at += 1,
                b'\r' => return Err(Flaw::BareCr),
                _ => return Err(Flaw::Line(from)),
            }
        }
        from += at + 1;
    }
}

/// Why the line of `head` at `from` is refused (see [`sanitize`]).
#[cold]
fn refusal(head: &[u8], from: usize) -> String {
    let rest = head.get(from..).unwrap_or_default();
    let line = &rest[..memchr::memchr(b'\n', rest).unwrap_or(rest.len())];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let Some(colon) = memchr::memchr(b':', line) else {
        return format!("malformed header '{}'", shown(line));
    };
    let name = &line[..colon];
    if line.contains(&0) {
        return format!("NUL byte in header '{}'", shown(name));
    }
    format!("invalid header name '{}'", shown(name))
}

/// The bytes that end a header name in [`scan`]: the colon, and what a
/// name must not hold before it (white space, CR, LF, NUL).
const NAME_END: [bool; 256] = byte_set(b": \t\r\n\0");

/// The bytes that stop [`scan`] in a value: its line's end, and NUL.
const VALUE_END: [bool; 256] = byte_set(b"\r\n\0");

/// A byte lookup table holding `bytes`.
const fn byte_set(bytes: &[u8]) -> [bool; 256] {
    let mut t = [false; 256];
    let mut i = 0;
    while i < bytes.len() {
        t[bytes[i] as usize] = true;
        i += 1;
    }
    t
}

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
        assert_eq!(
            clean,
            format!("Content-Type: text/plain\r\nX-Long: {long}\r\nX-Cr: ab\r\n\r\nbody\r\n").into_bytes()
        );
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
        // Bare CRs are gone before a line is judged.
        assert_eq!(err(b"a b\rc: v\n\n"), "invalid header name 'a bc'");
        assert_eq!(err(b"A: v\r\0\r\n\r\n"), "NUL byte in header 'A'");
        assert!(clean(b"A: v\rw\r\nB\r: x\n\n").is_ok());
        // A last line cut short of its LF is judged too.
        assert_eq!(clean(b"A: b").unwrap(), b"A: b");
        assert_eq!(err(b"A: b\nno colon"), "malformed header 'no colon'");
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
