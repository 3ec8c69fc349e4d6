//! Every error variant, produced from bytes, with its log text; and
//! stickiness.

#[cfg(test)] // test code only, like the whole `tests` module
use super::support::*;
use crate::protocol::*;

fn resp_err(input: &[u8]) -> ProtocolError {
    let mut dec = ResponseDecoder::new(1);
    let e = decode_response(&mut dec, input, &[input.len()]).unwrap_err();
    // Sticky: the same error again, even for good input.
    let mut good = Vec::new();
    ResponseEncoder::new(1).stdout(&mut good, b"ok");
    assert_eq!(dec.decode(&good), Err(e.clone()));
    assert_eq!(dec.decode(&[]), Err(e.clone()));
    e
}

fn req_err(input: &[u8]) -> ProtocolError {
    let mut dec = RequestDecoder::new();
    let e = decode_request(&mut dec, input, &[input.len()], 1024).unwrap_err();
    assert_eq!(dec.decode(&[1, 5, 0, 1, 0, 0, 0, 0]), Err(e.clone()));
    e
}

fn raw(version: u8, t: u8, id: u16, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_raw_record(&mut out, version, t, id, content, 0);
    out
}

fn check(e: ProtocolError, want: ProtocolError, text: &str) {
    assert_eq!(e, want);
    assert_eq!(e.to_string(), text);
}

#[test]
fn invalid_version() {
    check(resp_err(&raw(2, 6, 1, b"x")), ProtocolError::InvalidVersion(2), "invalid version: 2 != FCGI_VERSION(1)");
    check(req_err(&raw(0, 1, 1, &[0; 8])), ProtocolError::InvalidVersion(0), "invalid version: 0 != FCGI_VERSION(1)");
}

#[test]
fn invalid_type() {
    check(resp_err(&raw(1, 12, 1, b"")), ProtocolError::InvalidType(12), "invalid type: 12 > FCGI_MAXTYPE(11)");
    check(resp_err(&raw(1, 0, 1, b"")), ProtocolError::InvalidType(0), "invalid type: 0");
}

#[test]
fn unexpected_type() {
    // Each server->app type sent by an application.
    for t in [1, 2, 4, 5, 8, 9] {
        assert_eq!(resp_err(&raw(1, t, 1, b"")), ProtocolError::UnexpectedType(t));
    }
    check(resp_err(&raw(1, 5, 1, b"body")), ProtocolError::UnexpectedType(5), "unexpected record type 5");
    // Each app->server stream or END_REQUEST sent to an application.
    for t in [3, 6, 7] {
        assert_eq!(req_err(&raw(1, t, 1, &[0; 8])), ProtocolError::UnexpectedType(t));
    }
}

#[test]
fn unexpected_request_id() {
    // Output ahead of another request's.
    let mut input = Vec::new();
    ResponseEncoder::new(1).stdout(&mut input, b"fine");
    ResponseEncoder::new(2).stdout(&mut input, b"stray");
    check(
        resp_err(&input),
        ProtocolError::UnexpectedRequestId { expected: 1, got: 2 },
        "unexpected request id 2 (expected 1)",
    );
    assert_eq!(resp_err(&raw(1, 3, 0, &[0; 8])), ProtocolError::UnexpectedRequestId { expected: 1, got: 0 });
    // Management records carry id 0.
    check(
        resp_err(&raw(1, 10, 1, b"")),
        ProtocolError::UnexpectedRequestId { expected: 0, got: 1 },
        "unexpected request id 1 (expected 0)",
    );
}

#[test]
fn invalid_body_sizes() {
    check(
        resp_err(&raw(1, 3, 1, &[0; 4])),
        ProtocolError::InvalidEndRequestSize(4),
        "invalid FCGI_END_REQUEST size: 4 != sizeof(FCGI_EndRequestBody)(8)",
    );
    assert_eq!(resp_err(&raw(1, 3, 1, &[0; 9])), ProtocolError::InvalidEndRequestSize(9));
    // Rejected on the header, before a long body is read.
    let mut header = raw(1, 3, 1, &[0; 0]);
    header[4..6].copy_from_slice(&[0xff, 0xff]);
    assert_eq!(resp_err(&header), ProtocolError::InvalidEndRequestSize(65535));
    check(
        req_err(&raw(1, 1, 1, &[0; 7])),
        ProtocolError::InvalidBeginRequestSize(7),
        "invalid FCGI_BEGIN_REQUEST size: 7 != sizeof(FCGI_BeginRequestBody)(8)",
    );
    check(
        resp_err(&raw(1, 11, 0, &[5])),
        ProtocolError::InvalidUnknownTypeSize(1),
        "invalid FCGI_UNKNOWN_TYPE size: 1 != sizeof(FCGI_UnknownTypeBody)(8)",
    );
}

#[test]
fn truncated_name_value() {
    for block in [&[5][..], &[0x80, 0, 0], &[1, 1, b'a'], &[0x80, 0, 0, 1, 0x80]] {
        let got: Vec<_> = NvPairs::new(block).collect();
        assert_eq!(got, [Err(ProtocolError::TruncatedNameValue)]);
        let mut d = ParamsDecoder::new(100);
        d.feed(block).unwrap();
        assert_eq!(d.finish(), Err(ProtocolError::TruncatedNameValue));
    }
    assert_eq!(ProtocolError::TruncatedNameValue.to_string(), "truncated name-value pair");
    // Through a GET_VALUES record: the pair error reaches the app.
    let mut input = Vec::new();
    encode_raw_record(&mut input, 1, 9, 0, &[3, 0, b'A'], 5);
    let mut dec = RequestDecoder::new();
    let (_, ev) = dec.decode(&input).unwrap();
    match ev {
        Some(RequestEvent::GetValues(mut pairs)) => {
            assert_eq!(pairs.next(), Some(Err(ProtocolError::TruncatedNameValue)));
            assert_eq!(pairs.next(), None);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn name_value_too_large() {
    let mut stream = Vec::new();
    encode_nv_pair(&mut stream, b"NAME", b"value");
    let mut d = ParamsDecoder::new(10);
    d.feed(&stream[..6]).unwrap();
    let e = d.feed(&stream[6..]).unwrap_err();
    check(e, ProtocolError::NameValueTooLarge { limit: 10 }, "name-value pairs exceed 10 bytes");
    // Sticky, and finish reports it too.
    assert_eq!(d.feed(b""), Err(ProtocolError::NameValueTooLarge { limit: 10 }));
    assert_eq!(d.finish(), Err(ProtocolError::NameValueTooLarge { limit: 10 }));
    // Exactly at the limit is fine.
    let mut d = ParamsDecoder::new(stream.len());
    d.feed(&stream).unwrap();
    assert_eq!(d.finish().unwrap().len(), 1);
}

#[test]
fn data_after_end() {
    let mut input = Vec::new();
    let enc = ResponseEncoder::new(1);
    enc.end_request(&mut input, 0, REQUEST_COMPLETE);
    enc.stdout(&mut input, b"late");
    check(resp_err(&input), ProtocolError::DataAfterEnd, "data after FCGI_END_REQUEST");
}

#[test]
fn errors_are_std_errors() {
    let e: Box<dyn std::error::Error> = Box::new(ProtocolError::DataAfterEnd);
    assert_eq!(e.to_string(), "data after FCGI_END_REQUEST");
}
