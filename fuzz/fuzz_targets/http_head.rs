//! The request-head parser and everything that reads a parsed head's fields: none of
//! them may panic, and what they report must stay inside the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use servers::proto::http::{
    parse_head, parse_http_date, parse_range, parse_ranges, parse_target, Parsed, RangeSpec,
    MAX_HEAD, MAX_RANGES, MAX_URI,
};

fuzz_target!(|data: &[u8]| {
    match parse_head(data) {
        Parsed::Complete { head, len } => {
            assert!(len <= data.len());
            assert!(len <= MAX_HEAD + data.iter().take_while(|b| **b == b'\r' || **b == b'\n').count());
            assert!(head.target.len() <= MAX_URI);
            if let Ok(t) = parse_target(head.target) {
                assert!(!t.rel.starts_with(b"/"));
                assert!(!t.rel.split(|b| *b == b'/').any(|s| s == b".." || s == b"." || s.is_empty())
                    || t.rel.is_empty());
            }
            if let Some(r) = head.range {
                for len in [0u64, 1, 1000] {
                    if let RangeSpec::Part { start, end } = parse_range(r, len) {
                        assert!(start <= end && end < len);
                    }
                    let parts = parse_ranges(r, len);
                    let parts = parts.parts();
                    assert!(parts.len() <= MAX_RANGES);
                    assert!(parts.iter().map(|p| p.1 - p.0 + 1).sum::<u64>() <= len);
                    for (i, a) in parts.iter().enumerate() {
                        assert!(a.0 <= a.1 && a.1 < len);
                        // Coalesced: no two parts overlap or touch.
                        for b in &parts[i + 1..] {
                            assert!(a.1 + 1 < b.0 || b.1 + 1 < a.0);
                        }
                    }
                }
            }
            for v in [head.if_modified_since, head.if_unmodified_since, head.if_range]
                .into_iter()
                .flatten()
            {
                if let Ok(s) = std::str::from_utf8(v) {
                    let _ = parse_http_date(s);
                }
            }
        }
        Parsed::Partial => assert!(data.len() <= MAX_HEAD + MAX_URI),
        Parsed::Reject { line, .. } => assert!(line.len() <= data.len()),
    }
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = parse_http_date(s);
        let _ = parse_target(s);
    }
});
