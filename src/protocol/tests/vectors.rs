//! Byte vectors written out by hand from the spec, for every record type,
//! every name-value length layout, padding and record splitting.

#[cfg(test)] // test code only, like the whole `tests` module
use super::support::*;
use crate::protocol::*;

fn whole(input: &[u8]) -> Vec<usize> {
    if input.is_empty() {
        vec![]
    } else {
        vec![input.len()]
    }
}

fn bytewise(input: &[u8]) -> Vec<usize> {
    vec![1; input.len()]
}

fn resp(input: &[u8]) -> Vec<Resp> {
    let events = decode_response(&mut ResponseDecoder::new(1), input, &whole(input)).unwrap();
    let one = decode_response(&mut ResponseDecoder::new(1), input, &bytewise(input)).unwrap();
    assert_eq!(events, one, "byte-at-a-time decoding differs");
    events
}

fn req(input: &[u8]) -> Vec<Req> {
    let events = decode_request(&mut RequestDecoder::new(), input, &whole(input), 1 << 20).unwrap();
    let one = decode_request(&mut RequestDecoder::new(), input, &bytewise(input), 1 << 20).unwrap();
    assert_eq!(events, one, "byte-at-a-time decoding differs");
    events
}

fn pairs(list: &[(&[u8], &[u8])]) -> Vec<(Vec<u8>, Vec<u8>)> {
    list.iter().map(|(n, v)| (n.to_vec(), v.to_vec())).collect()
}

#[test]
fn record_type_and_role_numbers() {
    for v in 0..=255u8 {
        match RecordType::from_u8(v) {
            Some(t) => assert_eq!(t as u8, v),
            None => assert!(v == 0 || v > 11),
        }
    }
    assert_eq!(RecordType::from_u8(11), Some(RecordType::UnknownType));
    assert_eq!(Role::from_u16(1), Some(Role::Responder));
    assert_eq!(Role::from_u16(2), Some(Role::Authorizer));
    assert_eq!(Role::from_u16(3), Some(Role::Filter));
    assert_eq!(Role::from_u16(0), None);
    assert_eq!(Role::from_u16(4), None);
}

#[test]
fn begin_request() {
    let mut out = Vec::new();
    RequestEncoder::new(1).begin_request(&mut out, Role::Responder, false);
    let want = [1, 1, 0, 1, 0, 8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    assert_eq!(out, want);
    assert_eq!(req(&out), [Req::Begin(1, 1, false)]);

    let mut out = Vec::new();
    RequestEncoder::new(0x1234).begin_request(&mut out, Role::Authorizer, true);
    let want = [1, 1, 0x12, 0x34, 0, 8, 0, 0, 0, 2, 1, 0, 0, 0, 0, 0];
    assert_eq!(out, want);
    assert_eq!(req(&out), [Req::Begin(0x1234, 2, true)]);

    let mut out = Vec::new();
    RequestEncoder::new(3).begin_request(&mut out, Role::Filter, false);
    assert_eq!(out[8..10], [0, 3]);
    // An unknown role and other flag bits pass through as raw values.
    let raw = [1, 1, 0, 7, 0, 8, 0, 0, 0x01, 0x00, 0xfe, 9, 9, 9, 9, 9];
    assert_eq!(req(&raw), [Req::Begin(7, 256, false)]);
}

#[test]
fn abort_request() {
    let mut out = Vec::new();
    RequestEncoder::new(2).abort_request(&mut out);
    assert_eq!(out, [1, 2, 0, 2, 0, 0, 0, 0]);
    assert_eq!(req(&out), [Req::Abort(2)]);
}

#[test]
fn end_request() {
    let mut out = Vec::new();
    ResponseEncoder::new(1).end_request(&mut out, 0x0102_0304, OVERLOADED);
    assert_eq!(out, [1, 3, 0, 1, 0, 8, 0, 0, 1, 2, 3, 4, 2, 0, 0, 0]);
    assert_eq!(resp(&out), [Resp::End(0x0102_0304, OVERLOADED)]);
    let mut dec = ResponseDecoder::new(1);
    assert!(!dec.is_done());
    decode_response(&mut dec, &out, &[out.len()]).unwrap();
    assert!(dec.is_done());
}

#[test]
fn params_records() {
    let mut out = Vec::new();
    let enc = RequestEncoder::new(1);
    let mut w = enc.params(&mut out);
    w.pair(b"A", b"bc");
    w.pair(b"EMPTY", b"");
    assert_eq!(w.written(), 5 + 7);
    w.finish();
    let want = [
        1, 4, 0, 1, 0, 12, 4, 0, // header: 12 bytes of content, 4 of padding
        1, 2, b'A', b'b', b'c', // 1-byte lengths
        5, 0, b'E', b'M', b'P', b'T', b'Y', // empty value
        0, 0, 0, 0, // padding
        1, 4, 0, 1, 0, 0, 0, 0, // end of stream
    ];
    assert_eq!(out, want);
    assert_eq!(req(&out), [Req::Params(1, pairs(&[(b"A", b"bc"), (b"EMPTY", b"")]))]);

    // No pairs: only the empty record.
    let mut out = Vec::new();
    enc.params(&mut out).finish();
    assert_eq!(out, [1, 4, 0, 1, 0, 0, 0, 0]);
    assert_eq!(req(&out), [Req::Params(1, vec![])]);
}

#[test]
fn stream_records_with_padding() {
    let enc = RequestEncoder::new(1);
    let mut out = Vec::new();
    enc.stdin(&mut out, b"hello");
    enc.stdin(&mut out, b"");
    enc.stdin_end(&mut out);
    let want = [
        1, 5, 0, 1, 0, 5, 3, 0, b'h', b'e', b'l', b'l', b'o', 0, 0, 0, //
        1, 5, 0, 1, 0, 0, 0, 0,
    ];
    assert_eq!(out, want);
    assert_eq!(req(&out), [Req::Stdin(1, b"hello".to_vec()), Req::StdinEnd(1)]);

    let mut out = Vec::new();
    enc.data(&mut out, b"12345678");
    enc.data(&mut out, b"");
    enc.data_end(&mut out);
    let want = [
        1, 8, 0, 1, 0, 8, 0, 0, b'1', b'2', b'3', b'4', b'5', b'6', b'7', b'8', //
        1, 8, 0, 1, 0, 0, 0, 0,
    ];
    assert_eq!(out, want);
    assert_eq!(req(&out), [Req::Data(1, b"12345678".to_vec()), Req::DataEnd(1)]);

    let enc = ResponseEncoder::new(1);
    let mut out = Vec::new();
    enc.stdout(&mut out, b"Status: 200\r\n\r\n");
    enc.stderr(&mut out, b"oops\n");
    enc.stdout(&mut out, b"");
    enc.stderr_end(&mut out);
    enc.stdout_end(&mut out);
    let want = [
        1, 6, 0, 1, 0, 15, 1, 0, b'S', b't', b'a', b't', b'u', b's', b':', b' ', b'2', b'0', b'0', b'\r', b'\n', b'\r',
        b'\n', 0, //
        1, 7, 0, 1, 0, 5, 3, 0, b'o', b'o', b'p', b's', b'\n', 0, 0, 0, //
        1, 7, 0, 1, 0, 0, 0, 0, //
        1, 6, 0, 1, 0, 0, 0, 0,
    ];
    assert_eq!(out, want);
    assert_eq!(
        resp(&out),
        [
            Resp::Stdout(b"Status: 200\r\n\r\n".to_vec()),
            Resp::Stderr(b"oops\n".to_vec()),
            Resp::StderrEnd,
            Resp::StdoutEnd,
        ]
    );
}

#[test]
fn odd_padding_from_peers_is_skipped() {
    // Not 8-aligned, and the maximum of 255: both legal.
    let mut input = Vec::new();
    encode_raw_record(&mut input, 1, 6, 1, b"abc", 0);
    encode_raw_record(&mut input, 1, 6, 1, b"de", 255);
    encode_raw_record(&mut input, 1, 7, 1, b"", 3);
    encode_raw_record(&mut input, 1, 3, 1, &[0, 0, 0, 9, 0, 0, 0, 0], 1);
    assert_eq!(input.len(), 8 + 3 + 8 + 2 + 255 + 8 + 3 + 8 + 8 + 1);
    assert_eq!(resp(&input), [Resp::Stdout(b"abcde".to_vec()), Resp::StderrEnd, Resp::End(9, REQUEST_COMPLETE)]);

    let mut input = Vec::new();
    encode_raw_record(&mut input, 1, 5, 1, b"xyz", 200);
    encode_raw_record(&mut input, 1, 5, 1, b"", 1);
    assert_eq!(req(&input), [Req::Stdin(1, b"xyz".to_vec()), Req::StdinEnd(1)]);
}

#[test]
fn raw_record_fields_and_truncation() {
    let mut out = Vec::new();
    encode_raw_record(&mut out, 7, 200, 0xabcd, b"xy", 3);
    assert_eq!(out, [7, 200, 0xab, 0xcd, 0, 2, 3, 0, b'x', b'y', 0, 0, 0]);

    let big = vec![b'z'; MAX_CONTENT_LEN + 100];
    let mut out = Vec::new();
    encode_raw_record(&mut out, 1, 6, 1, &big, 0);
    assert_eq!(out.len(), HEADER_LEN + MAX_CONTENT_LEN);
    assert_eq!(out[4..6], [0xff, 0xff]);
}

#[test]
fn nv_length_layouts() {
    let short = vec![b'n'; 127];
    let long = vec![b'v'; 128];
    let cases: [(&[u8], &[u8], &[u8]); 5] = [
        (b"N", b"v", &[1, 1]),
        (&short, &short, &[127, 127]),
        (b"N", &long, &[1, 0x80, 0, 0, 128]),
        (&long, b"v", &[0x80, 0, 0, 128, 1]),
        (&long, &long, &[0x80, 0, 0, 128, 0x80, 0, 0, 128]),
    ];
    for (name, value, lens) in cases {
        let mut out = Vec::new();
        encode_nv_pair(&mut out, name, value);
        let mut want = lens.to_vec();
        want.extend_from_slice(name);
        want.extend_from_slice(value);
        assert_eq!(out, want);
        assert_eq!(nv_encoded_len(name, value), out.len());
        let got: Vec<_> = NvPairs::new(&out).collect();
        assert_eq!(got, [Ok((name, value))]);
    }
    // A big 4-byte length, with its high bit: 0x0001_0000.
    let mut out = Vec::new();
    encode_nv_pair(&mut out, b"", &vec![0; 65536]);
    assert_eq!(out[..5], [0, 0x80, 0x01, 0x00, 0x00]);
    // A decoder accepts a 4-byte encoding of a small length too.
    let block = [0x80, 0, 0, 1, 0x80, 0, 0, 0, b'X'];
    let got: Vec<_> = NvPairs::new(&block).collect();
    assert_eq!(got, [Ok((&b"X"[..], &b""[..]))]);
    // An empty block has no pairs.
    assert_eq!(NvPairs::new(&[]).count(), 0);
}

#[test]
fn nv_pairs_stop_after_error() {
    let block = [1, 1, b'a', b'b', 2, 5, b'c'];
    let got: Vec<_> = NvPairs::new(&block).collect();
    assert_eq!(got, [Ok((&b"a"[..], &b"b"[..])), Err(ProtocolError::TruncatedNameValue)]);
}

#[test]
fn get_values_and_result() {
    let mut out = Vec::new();
    encode_get_values(&mut out, &[b"FCGI_MAX_CONNS", b"FCGI_MPXS_CONNS"]);
    let mut want = vec![1, 9, 0, 0, 0, 33, 7, 0, 14, 0];
    want.extend_from_slice(b"FCGI_MAX_CONNS");
    want.extend_from_slice(&[15, 0]);
    want.extend_from_slice(b"FCGI_MPXS_CONNS");
    want.extend_from_slice(&[0; 7]);
    assert_eq!(out, want);
    assert_eq!(req(&out), [Req::Values(pairs(&[(b"FCGI_MAX_CONNS", b""), (b"FCGI_MPXS_CONNS", b"")]))]);
    // Content of 48 bytes, a multiple of 8: 8 bytes of padding, not none
    // (libfcgi answers only once it reads past the content).
    let mut out = Vec::new();
    encode_get_values(&mut out, &[b"FCGI_MAX_CONNS", b"FCGI_MAX_REQS", b"FCGI_MPXS_CONNS"]);
    assert_eq!((out[4], out[5], out[6], out.len()), (0, 48, 8, 8 + 48 + 8));
    assert_eq!(
        req(&out),
        [Req::Values(pairs(&[(b"FCGI_MAX_CONNS", b""), (b"FCGI_MAX_REQS", b""), (b"FCGI_MPXS_CONNS", b"")]))]
    );

    let mut out = Vec::new();
    encode_get_values_result(&mut out, &[(b"FCGI_MAX_REQS", b"10")]);
    let mut want = vec![1, 10, 0, 0, 0, 17, 7, 0, 13, 2];
    want.extend_from_slice(b"FCGI_MAX_REQS10");
    want.extend_from_slice(&[0; 7]);
    assert_eq!(out, want);
    assert_eq!(resp(&out), [Resp::Values(pairs(&[(b"FCGI_MAX_REQS", b"10")]))]);

    // What does not fit in one record is left out.
    let huge = vec![b'x'; 70_000];
    let mut out = Vec::new();
    encode_get_values_result(&mut out, &[(b"A", b"1"), (b"B", &huge), (b"C", b"3")]);
    assert_eq!(records(&out), [(10, 0, vec![1, 1, b'A', b'1', 1, 1, b'C', b'3'])]);
}

#[test]
fn unknown_type_both_ways() {
    let mut out = Vec::new();
    encode_unknown_type(&mut out, 42);
    assert_eq!(out, [1, 11, 0, 0, 0, 8, 0, 0, 42, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(resp(&out), [Resp::Unknown(42)]);

    // An application reports types it does not know, skipping their body.
    let mut input = Vec::new();
    encode_raw_record(&mut input, 1, 42, 0, b"whatever", 0);
    encode_raw_record(&mut input, 1, 0, 1, b"", 0);
    encode_raw_record(&mut input, 1, 10, 0, &[1, 1, b'a', b'b'], 4);
    encode_raw_record(&mut input, 1, 11, 0, &[0; 8], 0);
    assert_eq!(req(&input), [Req::Unknown(42), Req::Unknown(0), Req::Unknown(10), Req::Unknown(11)]);
}

#[test]
fn long_streams_split_into_records() {
    let data: Vec<u8> = (0..MAX_CONTENT_LEN + 10).map(|i| i as u8).collect();
    let mut out = Vec::new();
    RequestEncoder::new(1).stdin(&mut out, &data);
    assert_eq!(out[..8], [1, 5, 0, 1, 0xff, 0xff, 1, 0]);
    let second = HEADER_LEN + MAX_CONTENT_LEN + 1;
    assert_eq!(out[second..second + 8], [1, 5, 0, 1, 0, 10, 6, 0]);
    assert_eq!(out.len(), second + 8 + 16);
    let recs = records(&out);
    assert_eq!(recs.len(), 2);
    assert_eq!([&recs[0].2[..], &recs[1].2[..]].concat(), data);

    // Exactly 65535 is one record.
    let mut out = Vec::new();
    ResponseEncoder::new(1).stdout(&mut out, &data[..MAX_CONTENT_LEN]);
    assert_eq!(records(&out).len(), 1);
}

#[test]
fn params_pairs_span_records() {
    let value = vec![b'v'; 100_000];
    let mut out = Vec::new();
    let mut w = RequestEncoder::new(1).params(&mut out);
    w.pair(b"FIRST", b"1");
    w.pair(b"BIG", &value);
    w.pair(b"LAST", b"2");
    w.finish();
    let recs = records(&out);
    let sizes: Vec<usize> = recs.iter().map(|r| r.2.len()).collect();
    // 8 + (5 + 3 + 100000) + 7 = 100023 bytes of stream content.
    assert_eq!(sizes, [MAX_CONTENT_LEN, 100_023 - MAX_CONTENT_LEN, 0]);
    assert!(recs.iter().all(|r| r.0 == 4 && r.1 == 1));
    let stream: Vec<u8> = recs.iter().flat_map(|r| r.2.clone()).collect();
    assert_eq!(stream[8..16], [3, 0x80, 0x01, 0x86, 0xa0, b'B', b'I', b'G']);
    assert_eq!(req(&out), [Req::Params(1, pairs(&[(b"FIRST", b"1"), (b"BIG", &value), (b"LAST", b"2")]))]);
}

#[test]
fn params_writer_flush_gives_complete_records() {
    let enc = RequestEncoder::new(1);
    let mut sent = Vec::new();
    let mut out = Vec::new();
    let mut w = enc.params(&mut out);
    let mut want = Vec::new();
    for i in 0..1000 {
        let name = format!("VAR_{i}");
        let value = "x".repeat(i % 300);
        w.pair(name.as_bytes(), value.as_bytes());
        want.push((name.into_bytes(), value.into_bytes()));
        if i % 97 == 0 {
            let buf = w.flush();
            records(buf); // only complete records
            sent.append(buf);
        }
    }
    w.finish();
    sent.append(&mut out);
    assert_eq!(req(&sent), [Req::Params(1, want)]);
}

#[test]
fn response_decoder_after_end() {
    let mut input = Vec::new();
    encode_raw_record(&mut input, 1, 3, 1, &[0, 0, 0, 0, 0, 0, 0, 0], 5);
    let mut dec = ResponseDecoder::new(1);
    let end = ResponseEvent::EndRequest { app_status: 0, protocol_status: REQUEST_COMPLETE };
    assert_eq!(dec.decode(&input[..16]).unwrap(), (16, Some(end)));
    assert!(dec.is_done());
    // The record's padding may still come, in pieces.
    assert_eq!(dec.decode(&input[16..18]).unwrap(), (2, None));
    assert_eq!(dec.decode(&[]).unwrap(), (0, None));
    assert_eq!(dec.decode(&input[18..21]).unwrap(), (3, None));
    // Anything after it is an error, and stays one.
    assert_eq!(dec.decode(&[1]), Err(ProtocolError::DataAfterEnd));
    assert_eq!(dec.decode(&[]), Err(ProtocolError::DataAfterEnd));
    // Padding and more in one read: the same.
    let mut dec = ResponseDecoder::new(1);
    dec.decode(&input[..16]).unwrap();
    assert_eq!(dec.decode(&[0, 0, 0, 0, 0, 1]), Err(ProtocolError::DataAfterEnd));
}

#[test]
fn stream_content_is_zero_copy_and_bytewise_equal() {
    let mut input = Vec::new();
    let enc = ResponseEncoder::new(9);
    enc.stdout(&mut input, &[7; 1000]);
    encode_get_values_result(&mut input, &[(b"FCGI_MPXS_CONNS", b"0")]);
    enc.stderr(&mut input, b"warn");
    enc.end_request(&mut input, 1, REQUEST_COMPLETE);
    let mut dec = ResponseDecoder::new(9);
    let (n, ev) = dec.decode(&input).unwrap();
    assert_eq!(n, 8 + 1000);
    match ev {
        Some(ResponseEvent::Stdout(d)) => assert_eq!(d.as_ptr(), input[8..].as_ptr()),
        other => panic!("{other:?}"),
    }
    let events = decode_response(&mut ResponseDecoder::new(9), &input, &bytewise(&input)).unwrap();
    assert_eq!(
        events,
        [
            Resp::Stdout(vec![7; 1000]),
            Resp::Values(pairs(&[(b"FCGI_MPXS_CONNS", b"0")])),
            Resp::Stderr(b"warn".to_vec()),
            Resp::End(1, 0)
        ]
    );
}

#[test]
fn request_decoder_multiplexes_ids() {
    let mut input = Vec::new();
    let (a, b) = (RequestEncoder::new(1), RequestEncoder::new(2));
    a.begin_request(&mut input, Role::Responder, true);
    b.begin_request(&mut input, Role::Responder, true);
    a.stdin(&mut input, b"one");
    b.stdin(&mut input, b"two");
    b.stdin_end(&mut input);
    a.abort_request(&mut input);
    assert_eq!(
        req(&input),
        [
            Req::Begin(1, 1, true),
            Req::Begin(2, 1, true),
            Req::Stdin(1, b"one".to_vec()),
            Req::Stdin(2, b"two".to_vec()),
            Req::StdinEnd(2),
            Req::Abort(1)
        ]
    );
}

#[test]
fn params_decoder_any_split() {
    let mut stream = Vec::new();
    encode_nv_pair(&mut stream, b"SCRIPT_NAME", b"/index.php");
    encode_nv_pair(&mut stream, &[b'k'; 200], &[b'v'; 300]);
    encode_nv_pair(&mut stream, b"E", b"");
    for cut in 0..=stream.len() {
        let mut d = ParamsDecoder::new(stream.len());
        d.feed(&stream[..cut]).unwrap();
        d.feed(&stream[cut..]).unwrap();
        let got = d.finish().unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!(got[1], (vec![b'k'; 200], vec![b'v'; 300]));
    }
}

#[test]
fn response_decoder_knows_when_the_stream_stops_inside_a_record() {
    let mut stream = Vec::new();
    ResponseEncoder::new(1).stdout(&mut stream, b"hello");
    // Header, content and padding: every cut but the record's end is inside it.
    for cut in 0..=stream.len() {
        let mut dec = ResponseDecoder::new(1);
        let mut input = &stream[..cut];
        while !input.is_empty() {
            let (n, _) = dec.decode(input).unwrap();
            input = &input[n..];
        }
        assert_eq!(dec.in_record(), cut != 0 && cut != stream.len(), "cut at {cut}");
    }
}
