//! The web server's decoder on arbitrary application output. The first
//! byte picks a read size, so splits are fuzzed too: the transcript (stream
//! pieces merged) must be the same as for one big read, errors included.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mod_fastcgi_rs::protocol::{ResponseDecoder, ResponseEvent};

/// Decodes `input` in reads of `step` bytes into a transcript.
fn run(input: &[u8], step: usize) -> Vec<(String, Vec<u8>)> {
    let mut dec = ResponseDecoder::new(1);
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
                Some(ResponseEvent::Stdout(d)) => ("stdout".to_string(), d),
                Some(ResponseEvent::Stderr(d)) => ("stderr".to_string(), d),
                Some(ResponseEvent::GetValuesResult(pairs)) => (format!("{:?}", pairs.collect::<Vec<_>>()), &[][..]),
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
