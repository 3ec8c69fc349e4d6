//! A minimal JSON reader for what the test apps print: one flat object whose
//! values are strings (numbers, booleans and null are kept as their text).

use std::collections::BTreeMap;

pub fn parse_object(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut p = P { s: text.as_bytes(), i: 0 };
    p.ws();
    p.expect(b'{')?;
    let mut map = BTreeMap::new();
    p.ws();
    if p.peek() == Some(b'}') {
        return Ok(map);
    }
    loop {
        p.ws();
        let k = p.string()?;
        p.ws();
        p.expect(b':')?;
        p.ws();
        let v = if p.peek() == Some(b'"') { p.string()? } else { p.scalar()? };
        map.insert(k, v);
        p.ws();
        match p.next() {
            Some(b',') => continue,
            Some(b'}') => return Ok(map),
            other => return Err(format!("expected , or }} at {}, got {:?}", p.i, other.map(|b| b as char))),
        }
    }
}

struct P<'a> {
    s: &'a [u8],
    i: usize,
}

impl P<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn next(&mut self) -> Option<u8> {
        let b = self.peek();
        self.i += 1;
        b
    }
    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\n' | b'\r' | b'\t')) {
            self.i += 1;
        }
    }
    fn expect(&mut self, c: u8) -> Result<(), String> {
        match self.next() {
            Some(b) if b == c => Ok(()),
            other => Err(format!("expected {:?} at {}, got {:?}", c as char, self.i, other.map(|b| b as char))),
        }
    }
    fn scalar(&mut self) -> Result<String, String> {
        let start = self.i;
        while matches!(self.peek(), Some(b) if b != b',' && b != b'}' && !b.is_ascii_whitespace()) {
            self.i += 1;
        }
        if start == self.i {
            return Err(format!("empty value at {start}"));
        }
        Ok(String::from_utf8_lossy(&self.s[start..self.i]).into_owned())
    }
    fn hex4(&mut self) -> Result<u32, String> {
        let h = self.s.get(self.i..self.i + 4).ok_or("short \\u escape")?;
        self.i += 4;
        u32::from_str_radix(std::str::from_utf8(h).map_err(|e| e.to_string())?, 16).map_err(|e| e.to_string())
    }
    fn string(&mut self) -> Result<String, String> {
        self.expect(b'"')?;
        let mut out: Vec<u8> = Vec::new();
        loop {
            match self.next() {
                None => return Err("unterminated string".into()),
                Some(b'"') => return Ok(String::from_utf8_lossy(&out).into_owned()),
                Some(b'\\') => {
                    let c = self.next().ok_or("dangling escape")?;
                    let ch = match c {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let mut cp = self.hex4()?;
                            if (0xd800..0xdc00).contains(&cp) && self.s.get(self.i..self.i + 2) == Some(b"\\u") {
                                self.i += 2;
                                let lo = self.hex4()?;
                                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo.wrapping_sub(0xdc00) & 0x3ff);
                            }
                            char::from_u32(cp).unwrap_or('\u{fffd}')
                        }
                        other => return Err(format!("bad escape \\{}", other as char)),
                    };
                    let mut b = [0u8; 4];
                    out.extend_from_slice(ch.encode_utf8(&mut b).as_bytes());
                }
                Some(b) => out.push(b),
            }
        }
    }
}
