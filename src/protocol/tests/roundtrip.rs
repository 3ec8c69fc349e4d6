//! Seeded round-trip property test: random environments, bodies and read
//! splits through both encoder/decoder pairs must come back unchanged.

#[cfg(test)] // test code only, like the whole `tests` module
use super::support::*;
use crate::protocol::*;

/// Sizes that hit every boundary of the format: the 1-byte/4-byte length
/// switch (127/128), one record (65535), just over (65536) and 1 MiB.
fn size(rng: &mut Rng) -> usize {
    match rng.below(64) {
        0 => 1 << 20,
        1..=3 => 65535,
        4..=6 => 65536,
        7..=14 => 127,
        15..=22 => 128,
        23..=30 => 0,
        _ => rng.below(300),
    }
}

fn blob(rng: &mut Rng) -> Vec<u8> {
    let n = size(rng);
    rng.bytes(n)
}

fn push(expected: &mut Vec<Resp>, ev: Resp) {
    match (expected.last_mut(), &ev) {
        (Some(Resp::Stdout(prev)), Resp::Stdout(d)) | (Some(Resp::Stderr(prev)), Resp::Stderr(d)) => {
            prev.extend_from_slice(d)
        }
        _ => expected.push(ev),
    }
}

/// Read splits: any pattern, but byte-at-a-time only for small inputs so
/// the debug-build test stays fast.
fn cuts(rng: &mut Rng, len: usize) -> Vec<usize> {
    loop {
        let cuts = rng.splits(len);
        if len < 8192 || cuts.len() < len / 8 {
            return cuts;
        }
    }
}

/// 300 random requests and responses; some environments carry 1 MiB
/// names or values, so this moves a few hundred MiB in total.
#[test]
fn request_and_response_round_trip() {
    let mut rng = Rng::new(0x5eed);
    for case in 0..300 {
        let request_id = if case % 2 == 0 { 1 } else { rng.byte().into() };

        // The web server's side.
        let env: Vec<(Vec<u8>, Vec<u8>)> = (0..rng.below(12)).map(|_| (blob(&mut rng), blob(&mut rng))).collect();
        let body = blob(&mut rng);
        let role = [Role::Responder, Role::Authorizer, Role::Filter][rng.below(3)];
        let keep_conn = rng.chance(2);
        let file = if role == Role::Filter { Some(blob(&mut rng)) } else { None };

        let enc = RequestEncoder::new(request_id);
        let mut out = Vec::new();
        enc.begin_request(&mut out, role, keep_conn);
        let mut sent = Vec::new();
        let mut w = enc.params(&mut out);
        for (name, value) in &env {
            w.pair(name, value);
            if rng.chance(4) {
                sent.append(w.flush());
            }
        }
        w.finish();
        enc.stdin(&mut out, &body);
        enc.stdin_end(&mut out);
        if let Some(file) = &file {
            enc.data(&mut out, file);
            enc.data_end(&mut out);
        }
        sent.append(&mut out);
        records(&sent);

        let mut want = vec![Req::Begin(request_id, role as u16, keep_conn), Req::Params(request_id, env.clone())];
        if !body.is_empty() {
            want.push(Req::Stdin(request_id, body.clone()));
        }
        want.push(Req::StdinEnd(request_id));
        if let Some(file) = file {
            if !file.is_empty() {
                want.push(Req::Data(request_id, file));
            }
            want.push(Req::DataEnd(request_id));
        }
        let split = cuts(&mut rng, sent.len());
        let got = decode_request(&mut RequestDecoder::new(), &sent, &split, 8 << 20).unwrap();
        assert_eq!(got, want, "request case {case}");

        // The application's side.
        let enc = ResponseEncoder::new(request_id);
        let mut out = Vec::new();
        let mut want = Vec::new();
        for _ in 0..rng.below(8) {
            let data = blob(&mut rng);
            match rng.below(5) {
                0 => {
                    encode_get_values_result(&mut out, &[(b"FCGI_MAX_CONNS", b"10")]);
                    let pair = (b"FCGI_MAX_CONNS".to_vec(), b"10".to_vec());
                    want.push(Resp::Values(vec![pair]));
                }
                1 => {
                    enc.stderr(&mut out, &data);
                    if !data.is_empty() {
                        push(&mut want, Resp::Stderr(data));
                    }
                }
                _ => {
                    enc.stdout(&mut out, &data);
                    if !data.is_empty() {
                        push(&mut want, Resp::Stdout(data));
                    }
                }
            }
        }
        enc.stderr_end(&mut out);
        enc.stdout_end(&mut out);
        let status = rng.next_u64() as u32;
        enc.end_request(&mut out, status, REQUEST_COMPLETE);
        want.extend([Resp::StderrEnd, Resp::StdoutEnd, Resp::End(status, 0)]);
        records(&out);

        let split = cuts(&mut rng, out.len());
        let mut dec = ResponseDecoder::new(request_id);
        let got = decode_response(&mut dec, &out, &split).unwrap();
        assert_eq!(got, want, "response case {case}");
        assert!(dec.is_done());
    }
}
