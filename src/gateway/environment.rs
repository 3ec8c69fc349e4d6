//! CGI variables exactly as httpd's `ap_create_environment` writes them,
//! computed while encoding PARAMS straight from the request's environment
//! table, so that no request copies every variable into a `NAME=value`
//! string first (what that function does for mod_cgi's `execve`).

/// The bytes `ap_create_environment` keeps in a name: ASCII letters,
/// digits and `_` (a table: one load per byte).
const NAME_BYTE: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric() || c == b'_';
        b += 1;
    }
    t
};

/// Calls `emit` with the variable that `ap_create_environment` makes of the
/// table entry `key` = `val`: a leading digit and every byte of the name
/// that is not an ASCII letter, digit or `_` become `_`, and the name ends
/// at the first `=` of the key (the rest of the key starts the value).
/// Names that need no change, all of httpd's own, are passed without a
/// copy; `scratch` holds a changed one.
#[inline]
pub fn variable(key: &[u8], val: &[u8], scratch: &mut Vec<u8>, mut emit: impl FnMut(&[u8], &[u8])) {
    // One pass over the name, as httpd's own names need: no copy, no search.
    if is_clean(key) {
        emit(key, val);
    } else {
        renamed(key, val, scratch, &mut emit);
    }
}

/// [`variable`] for a name that must change (a SetEnv or header name
/// httpd did not write itself): kept out of line.
#[cold]
#[inline(never)]
fn renamed(key: &[u8], val: &[u8], scratch: &mut Vec<u8>, emit: &mut dyn FnMut(&[u8], &[u8])) {
    let eq = memchr::memchr(b'=', key);
    let name = &key[..eq.unwrap_or(key.len())];
    let name = if is_clean(name) {
        name
    } else {
        scratch.clear();
        scratch.extend(name.iter().enumerate().map(|(i, &b)| {
            let keep = NAME_BYTE[usize::from(b)] && !(i == 0 && b.is_ascii_digit());
            if keep {
                b
            } else {
                b'_'
            }
        }));
        scratch.as_slice()
    };
    match eq {
        None => emit(name, val),
        Some(eq) => emit(name, &[&key[eq + 1..], b"=", val].concat()),
    }
}

/// Whether `name` is already a name `ap_create_environment` leaves as it
/// is: no leading digit, only ASCII letters, digits and `_`. Eight bytes
/// at a time, the last eight overlapping the ones before (a request has
/// two dozen variables, each checked once).
fn is_clean(name: &[u8]) -> bool {
    if name.first().is_some_and(u8::is_ascii_digit) {
        return false;
    }
    if name.len() < 8 {
        return name.iter().all(|&b| NAME_BYTE[usize::from(b)]);
    }
    let mut rest = name;
    while let Some((word, more)) = rest.split_first_chunk::<8>() {
        if !word_clean(u64::from_le_bytes(*word)) {
            return false;
        }
        rest = more;
    }
    // Fewer than eight left: the name's last eight bytes hold them.
    rest.is_empty() || name.last_chunk::<8>().is_some_and(|word| word_clean(u64::from_le_bytes(*word)))
}

/// The byte `b` in each of a word's eight bytes.
const fn splat(b: u8) -> u64 {
    0x0101_0101_0101_0101 * b as u64
}

/// Whether each byte of `w` is an ASCII letter, digit or `_`: for bytes
/// below 0x80, adding `0x80 - lo` sets a byte's top bit exactly when it is
/// at least `lo`, without a carry into the next byte.
fn word_clean(w: u64) -> bool {
    const TOP: u64 = splat(0x80);
    if w & TOP != 0 {
        return false;
    }
    let at_least = |x: u64, lo: u8| x.wrapping_add(splat(0x80 - lo));
    let at_most = |x: u64, hi: u8| !x.wrapping_add(splat(0x7f - hi));
    let lower = w | splat(0x20);
    let digit = at_least(w, b'0') & at_most(w, b'9');
    let letter = at_least(lower, b'a') & at_most(lower, b'z');
    let underscore = at_least(w, b'_') & at_most(w, b'_');
    (digit | letter | underscore) & TOP == TOP
}

#[cfg(test)]
mod tests {
    use super::{is_clean, variable, NAME_BYTE};

    fn one(key: &[u8], val: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let mut got = Vec::new();
        variable(key, val, &mut Vec::new(), |n, v| got.push((n.to_vec(), v.to_vec())));
        assert_eq!(got.len(), 1);
        got.remove(0)
    }

    #[test]
    fn names_as_httpd_writes_them() {
        assert_eq!(one(b"HTTP_HOST", b"a=b"), (b"HTTP_HOST".to_vec(), b"a=b".to_vec()));
        assert_eq!(one(b"HTTP_X_MY-HEADER", b"v"), (b"HTTP_X_MY_HEADER".to_vec(), b"v".to_vec()));
        assert_eq!(one(b"1ABC", b"v"), (b"_ABC".to_vec(), b"v".to_vec()));
        assert_eq!(one(b"A1", b""), (b"A1".to_vec(), b"".to_vec()));
        assert_eq!(one(b"caf\xc3\xa9.x", b"v"), (b"caf___x".to_vec(), b"v".to_vec()));
        // The name ends at the key's first '='.
        assert_eq!(one(b"A=B", b"c"), (b"A".to_vec(), b"B=c".to_vec()));
        assert_eq!(one(b"", b"v"), (b"".to_vec(), b"v".to_vec()));
    }

    #[test]
    fn word_check_agrees_with_the_byte_table() {
        // Every byte value in every position of names of 1 to 24 bytes.
        for len in 1..=24 {
            for b in 0..=255u8 {
                for at in 0..len {
                    let mut name = b"ABCDEFGHIJ_12345abcdefgh"[..len].to_vec();
                    name[at] = b;
                    let by_table = !(at == 0 && b.is_ascii_digit()) && NAME_BYTE[usize::from(b)];
                    assert_eq!(is_clean(&name), by_table, "byte {b:#x} at {at} of {len}");
                }
            }
        }
        assert!(is_clean(b""));
    }
}
