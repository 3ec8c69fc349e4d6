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
pub fn variable(key: &[u8], val: &[u8], scratch: &mut Vec<u8>, emit: &mut dyn FnMut(&[u8], &[u8])) {
    // One pass over the name, as httpd's own names need: no copy, no search.
    if !key.first().is_some_and(u8::is_ascii_digit) && key.iter().all(|&b| NAME_BYTE[usize::from(b)]) {
        emit(key, val);
        return;
    }
    let eq = memchr::memchr(b'=', key);
    let name = &key[..eq.unwrap_or(key.len())];
    let clean = !name.first().is_some_and(u8::is_ascii_digit) && name.iter().all(|&b| NAME_BYTE[usize::from(b)]);
    let name = if clean {
        name
    } else {
        scratch.clear();
        scratch.extend(name.iter().enumerate().map(|(i, &b)| {
            let keep = b.is_ascii_alphanumeric() && !(i == 0 && b.is_ascii_digit()) || b == b'_';
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

#[cfg(test)]
mod tests {
    use super::variable;

    fn one(key: &[u8], val: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let mut got = Vec::new();
        variable(key, val, &mut Vec::new(), &mut |n, v| got.push((n.to_vec(), v.to_vec())));
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
}
