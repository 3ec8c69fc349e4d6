//! The application's decoder on arbitrary web server input, with PARAMS
//! run through a `ParamsDecoder`. The first byte picks a read size: the
//! transcript (stream pieces merged) must match one big read.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mod_fastcgi_rs::protocol::{ParamsDecoder, RequestDecoder, RequestEvent};

/// Decodes `input` in reads of `step` bytes into a transcript.
fn run(input: &[u8], step: usize) -> Vec<(String, Vec<u8>)> {
    let mut dec = RequestDecoder::new();
    let mut params = ParamsDecoder::new(4096);
    let mut params_error = None;
    let mut out: Vec<(String, Vec<u8>)> = Vec::new();
    for mut read in input.chunks(step) {
        while !read.is_empty() {
            let (n, ev) = match dec.decode(read) {
                Ok(r) => r,
                Err(e) => {
                    assert_eq!(dec.decode(read), Err(e.clone()), "error not sticky");
                    out.push((e.to_string(), Vec::new()));
                    return out;
                }
            };
            assert!(n <= read.len() && (n > 0 || ev.is_some()));
            let (kind, data) = match ev {
                None => {
                    assert_eq!(n, read.len());
                    (String::new(), &[][..])
                }
                Some(RequestEvent::Params { data, .. }) => {
                    if let Err(e) = params.feed(data) {
                        params_error.get_or_insert(e);
                    }
                    (String::new(), &[][..])
                }
                Some(RequestEvent::ParamsEnd { request_id }) => {
                    let done = std::mem::replace(&mut params, ParamsDecoder::new(4096));
                    let result = match params_error.take() {
                        Some(e) => Err(e),
                        None => done.finish(),
                    };
                    (format!("params {request_id} {result:?}"), &[][..])
                }
                Some(RequestEvent::Stdin { request_id, data }) => (format!("stdin {request_id}"), data),
                Some(RequestEvent::Data { request_id, data }) => (format!("data {request_id}"), data),
                Some(RequestEvent::GetValues(pairs)) => (format!("{:?}", pairs.collect::<Vec<_>>()), &[][..]),
                Some(ev) => (format!("{ev:?}"), &[][..]),
            };
            match out.last_mut() {
                _ if kind.is_empty() => {}
                Some((k, d)) if *k == kind && !data.is_empty() => d.extend_from_slice(data),
                _ => out.push((kind, data.to_vec())),
            }
            read = &read[n..];
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&step, input)) = data.split_first() else {
        return;
    };
    let whole = run(input, input.len().max(1));
    let split = run(input, usize::from(step).max(1));
    assert_eq!(whole, split);
});
