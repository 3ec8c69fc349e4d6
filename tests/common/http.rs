//! A raw HTTP/1.1 client over `TcpStream`: exact control over framing, and a
//! faithful report of how the response body ended (for truncation tests).

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// A request body.
#[derive(Clone, Debug)]
pub enum Body {
    None,
    /// Sent with `Content-Length`.
    Fixed(Vec<u8>),
    /// Sent with `Transfer-Encoding: chunked`, one HTTP chunk per element.
    Chunked(Vec<Vec<u8>>),
}

impl Body {
    /// `data` as chunks of `size` bytes (the last may be shorter).
    pub fn chunked(data: &[u8], size: usize) -> Body {
        Body::Chunked(data.chunks(size.max(1)).map(|c| c.to_vec()).collect())
    }
}

#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Body,
    pub timeout: Duration,
}

impl Request {
    pub fn new(method: &str, path: &str) -> Request {
        Request {
            method: method.to_string(),
            path: path.to_string(),
            headers: Vec::new(),
            body: Body::None,
            timeout: Duration::from_secs(30),
        }
    }

    pub fn get(path: &str) -> Request {
        Request::new("GET", path)
    }

    pub fn post(path: &str, body: Body) -> Request {
        Request::new("POST", path).body(body)
    }

    pub fn header(mut self, name: &str, value: &str) -> Request {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    pub fn body(mut self, body: Body) -> Request {
        self.body = body;
        self
    }

    /// Read (and write) timeout for the whole exchange's individual I/O calls.
    pub fn timeout(mut self, t: Duration) -> Request {
        self.timeout = t;
        self
    }

    fn head_bytes(&self, port: u16) -> Vec<u8> {
        let mut h = format!("{} {} HTTP/1.1\r\n", self.method, self.path);
        let has = |n: &str| self.headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(n));
        if !has("Host") {
            h.push_str(&format!("Host: 127.0.0.1:{port}\r\n"));
        }
        if !has("Connection") {
            h.push_str("Connection: close\r\n");
        }
        for (k, v) in &self.headers {
            h.push_str(&format!("{k}: {v}\r\n"));
        }
        match &self.body {
            Body::None => {}
            Body::Fixed(b) => {
                if !has("Content-Length") {
                    h.push_str(&format!("Content-Length: {}\r\n", b.len()));
                }
            }
            Body::Chunked(_) => h.push_str("Transfer-Encoding: chunked\r\n"),
        }
        h.push_str("\r\n");
        h.into_bytes()
    }

    /// Sends the request on a new connection to 127.0.0.1:`port` and reads
    /// the response. `Err` only when no status line could be read.
    pub fn send(&self, port: u16) -> io::Result<Response> {
        let started = Instant::now();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        s.set_read_timeout(Some(self.timeout))?;
        s.set_write_timeout(Some(self.timeout))?;
        let _ = s.set_nodelay(true);
        // A server may answer (and close) before reading the whole body: a
        // failed write is not an error as long as a response comes back.
        let write_result = self.write_all(&mut s, port);
        let mut reader =
            Reader { stream: s, buf: Vec::new(), pos: 0, eof: false, timed_out: false, error: None, head: Vec::new() };
        let resp = reader.read_response(self.method.eq_ignore_ascii_case("HEAD"));
        match resp {
            Some(mut r) => {
                r.elapsed = started.elapsed();
                r.write_error = write_result.err().map(|e| e.to_string());
                Ok(r)
            }
            None => {
                let why = match (write_result, reader.error.take()) {
                    (Err(w), _) => format!("write failed ({w}) and no response"),
                    (_, Some(e)) => format!("no response: {e}"),
                    _ if reader.timed_out => "no response: read timed out".to_string(),
                    _ => "connection closed without a response".to_string(),
                };
                Err(io::Error::new(io::ErrorKind::Other, why))
            }
        }
    }

    fn write_all(&self, s: &mut TcpStream, port: u16) -> io::Result<()> {
        let head = self.head_bytes(port);
        match &self.body {
            Body::None => s.write_all(&head)?,
            Body::Fixed(b) => {
                if b.len() <= 64 * 1024 {
                    let mut all = head;
                    all.extend_from_slice(b);
                    s.write_all(&all)?;
                } else {
                    s.write_all(&head)?;
                    for part in b.chunks(256 * 1024) {
                        s.write_all(part)?;
                    }
                }
            }
            Body::Chunked(chunks) => {
                s.write_all(&head)?;
                let mut pending = Vec::new();
                for c in chunks {
                    if c.is_empty() {
                        continue; // an empty chunk would end the body
                    }
                    pending.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
                    pending.extend_from_slice(c);
                    pending.extend_from_slice(b"\r\n");
                    if pending.len() >= 64 * 1024 {
                        s.write_all(&pending)?;
                        pending.clear();
                    }
                }
                pending.extend_from_slice(b"0\r\n\r\n");
                s.write_all(&pending)?;
            }
        }
        s.flush()
    }
}

/// How the response body was delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// No body by definition (HEAD, 1xx, 204, 304).
    Empty,
    ContentLength(u64),
    Chunked,
    /// Read until the server closed.
    Close,
}

#[derive(Clone, Debug)]
pub struct Response {
    pub status: u16,
    pub reason: String,
    /// In order, repeated headers kept.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub framing: Framing,
    /// The body ended as its framing says it must: the last-chunk arrived,
    /// or all Content-Length bytes, or (read-to-close) EOF without timeout.
    pub complete: bool,
    /// A read timed out before the body was complete.
    pub timed_out: bool,
    pub elapsed: Duration,
    /// Writing the request failed (the server answered early).
    pub write_error: Option<String>,
    /// Bytes the server sent after the end of the message, before closing
    /// (e.g. a body after a HEAD response). Only read for complete messages.
    pub extra: Vec<u8>,
    /// Every byte before the body exactly as received: interim (1xx)
    /// responses, the status line and the header lines with their line ends.
    pub raw_head: Vec<u8>,
}

impl Response {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Every header named `name`, in order.
    pub fn headers_all(&self, name: &str) -> Vec<&str> {
        self.headers.iter().filter(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str()).collect()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

struct Reader {
    stream: TcpStream,
    buf: Vec<u8>,
    pos: usize,
    eof: bool,
    timed_out: bool,
    error: Option<String>,
    /// Raw bytes of the lines read so far (the response head).
    head: Vec<u8>,
}

impl Reader {
    /// Reads more bytes; false at EOF, timeout or error.
    fn fill(&mut self) -> bool {
        if self.eof {
            return false;
        }
        if self.pos > 0 && self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        } else if self.pos > 1 << 20 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        let mut tmp = [0u8; 64 * 1024];
        loop {
            match self.stream.read(&mut tmp) {
                Ok(0) => {
                    self.eof = true;
                    return false;
                }
                Ok(n) => {
                    self.buf.extend_from_slice(&tmp[..n]);
                    return true;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                    self.timed_out = true;
                    self.eof = true;
                    return false;
                }
                Err(e) => {
                    // ECONNRESET after a partial response counts as the end.
                    self.error = Some(e.to_string());
                    self.eof = true;
                    return false;
                }
            }
        }
    }

    /// A line without its CRLF (or LF); None at EOF before a line end.
    fn line(&mut self) -> Option<Vec<u8>> {
        loop {
            if let Some(i) = self.buf[self.pos..].iter().position(|&b| b == b'\n') {
                let mut l = self.buf[self.pos..self.pos + i].to_vec();
                self.head.extend_from_slice(&self.buf[self.pos..self.pos + i + 1]);
                self.pos += i + 1;
                if l.last() == Some(&b'\r') {
                    l.pop();
                }
                return Some(l);
            }
            if !self.fill() {
                return None;
            }
        }
    }

    /// Up to `n` bytes (fewer at EOF).
    fn take(&mut self, n: usize, out: &mut Vec<u8>) -> usize {
        let mut got = 0;
        while got < n {
            if self.pos == self.buf.len() && !self.fill() {
                break;
            }
            let k = (n - got).min(self.buf.len() - self.pos);
            out.extend_from_slice(&self.buf[self.pos..self.pos + k]);
            self.pos += k;
            got += k;
        }
        got
    }

    fn read_response(&mut self, head: bool) -> Option<Response> {
        loop {
            let status_line = self.line()?;
            let status_line = String::from_utf8_lossy(&status_line).into_owned();
            let mut parts = status_line.splitn(3, ' ');
            let _version = parts.next()?;
            let status: u16 = parts.next()?.trim().parse().ok()?;
            let reason = parts.next().unwrap_or("").to_string();
            let mut headers = Vec::new();
            loop {
                let l = self.line()?;
                if l.is_empty() {
                    break;
                }
                let l = String::from_utf8_lossy(&l).into_owned();
                if let Some((k, v)) = l.split_once(':') {
                    headers.push((k.trim().to_string(), v.trim().to_string()));
                }
            }
            if (100..200).contains(&status) {
                continue; // 100 Continue and friends
            }
            let mut resp = Response {
                status,
                reason,
                headers,
                body: Vec::new(),
                framing: Framing::Close,
                complete: false,
                timed_out: false,
                elapsed: Duration::ZERO,
                write_error: None,
                extra: Vec::new(),
                raw_head: std::mem::take(&mut self.head),
            };
            let chunked =
                resp.header("Transfer-Encoding").map(|v| v.to_ascii_lowercase().contains("chunked")).unwrap_or(false);
            let length = resp.header("Content-Length").and_then(|v| v.trim().parse::<u64>().ok());
            if head || status == 204 || status == 304 {
                resp.framing = Framing::Empty;
                resp.complete = true;
            } else if chunked {
                resp.framing = Framing::Chunked;
                resp.complete = self.read_chunked(&mut resp.body);
            } else if let Some(n) = length {
                resp.framing = Framing::ContentLength(n);
                let got = self.take(n as usize, &mut resp.body);
                resp.complete = got as u64 == n;
            } else {
                resp.framing = Framing::Close;
                while self.pos < self.buf.len() || self.fill() {
                    resp.body.extend_from_slice(&self.buf[self.pos..]);
                    self.pos = self.buf.len();
                }
                resp.complete = !self.timed_out && self.error.is_none();
            }
            if resp.complete && resp.framing != Framing::Close {
                // We asked for Connection: close; whatever comes before EOF
                // is not part of a well-formed response.
                while self.pos < self.buf.len() || self.fill() {
                    resp.extra.extend_from_slice(&self.buf[self.pos..]);
                    self.pos = self.buf.len();
                }
            }
            resp.timed_out = self.timed_out;
            return Some(resp);
        }
    }

    /// Decodes a chunked body; true when the last-chunk and trailers arrived.
    fn read_chunked(&mut self, body: &mut Vec<u8>) -> bool {
        loop {
            let Some(size_line) = self.line() else { return false };
            let size_str = String::from_utf8_lossy(&size_line);
            let size_str = size_str.split(';').next().unwrap_or("").trim();
            let Ok(size) = usize::from_str_radix(size_str, 16) else { return false };
            if size == 0 {
                // Trailers, then the empty line.
                loop {
                    match self.line() {
                        Some(l) if l.is_empty() => return true,
                        Some(_) => continue,
                        None => return false,
                    }
                }
            }
            if self.take(size, body) < size {
                return false;
            }
            match self.line() {
                Some(l) if l.is_empty() => {}
                _ => return false,
            }
        }
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Both);
    }
}

/// Sends `request` as it is on a new connection to 127.0.0.1:`port` and
/// returns every byte the server sent until it closed (or `timeout` passed
/// without a byte): the response exactly as a client sees it, unparsed.
pub fn raw(port: u16, request: &[u8], timeout: Duration) -> io::Result<Vec<u8>> {
    let mut s = TcpStream::connect_timeout(&SocketAddr::from(([127, 0, 0, 1], port)), Duration::from_secs(5))?;
    s.set_read_timeout(Some(timeout))?;
    s.write_all(request)?;
    let mut out = Vec::new();
    match s.read_to_end(&mut out) {
        Ok(_) => Ok(out),
        Err(e) if out.is_empty() => Err(e),
        Err(_) => Ok(out),
    }
}

/// `Authorization: Basic` for `user:pass` (base64 by hand: no crate for it).
pub fn basic_auth(user: &str, pass: &str) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let raw = format!("{user}:{pass}").into_bytes();
    let mut out = String::new();
    for chunk in raw.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            out.push(if i <= chunk.len() { A[((n >> (18 - 6 * i)) & 63) as usize] as char } else { '=' });
        }
    }
    format!("Basic {out}")
}
