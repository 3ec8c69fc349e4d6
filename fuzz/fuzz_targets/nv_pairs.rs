//! Name-value decoding two ways: `NvPairs` over a whole block, and
//! `ParamsDecoder` fed in pieces (the first byte picks their size). Both
//! must agree, respect the limit, and re-encode to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mod_fastcgi_rs::protocol::{encode_nv_pair, ParamsDecoder, ProtocolError};

fuzz_target!(|data: &[u8]| {
    let Some((&step, block)) = data.split_first() else {
        return;
    };
    let mut pairs = Vec::new();
    let mut truncated = false;
    for pair in mod_fastcgi_rs::protocol::NvPairs::new(block) {
        match pair {
            Ok(p) => pairs.push(p),
            Err(e) => {
                assert_eq!(e, ProtocolError::TruncatedNameValue);
                truncated = true;
            }
        }
    }

    let limit = block.len() / 2 + usize::from(step);
    let mut dec = ParamsDecoder::new(limit);
    let mut over = false;
    for piece in block.chunks(usize::from(step).max(1)) {
        if let Err(e) = dec.feed(piece) {
            assert_eq!(e, ProtocolError::NameValueTooLarge { limit });
            over = true;
            break;
        }
    }
    assert_eq!(over, block.len() > limit);
    match dec.finish() {
        Ok(owned) => {
            assert!(!over && !truncated);
            let same = owned.iter().map(|(n, v)| (&n[..], &v[..]));
            assert!(same.eq(pairs.iter().copied()));
            // Canonical re-encoding is never longer than the input (which
            // may use 4-byte lengths for short names).
            let mut again = Vec::new();
            for (n, v) in &pairs {
                encode_nv_pair(&mut again, n, v);
            }
            assert!(again.len() <= block.len());
        }
        Err(ProtocolError::TruncatedNameValue) => assert!(!over && truncated),
        Err(e) => assert!(over && e == ProtocolError::NameValueTooLarge { limit }),
    }
});
