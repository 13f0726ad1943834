//! Feeds fuzzer-chosen documents and byte ranges through the detokenizer's JSON locator
//! (`cloakroom_vault::fuzzing::json_locate`, the pass that tells which JSON pointer each
//! placeholder occurrence sits in, so `json:/pointer` bindings can be checked).
//!
//! What must hold: no panic; the locator accepts exactly the documents serde_json
//! accepts (below serde_json's nesting limit of 128), except those over its own limits
//! (depth 64, pointer length), which it refuses as such; every pointer it reports resolves
//! in the document as serde_json reads it; a range it places in a string lies inside the
//! document.
//!
//! Input layout: byte 0 = number of ranges (k, up to 15), then k × 3 bytes (start as
//! u16 big-endian, length), the rest is the document.
#![no_main]

use cloakroom_vault::fuzzing::{json_locate, Located};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&head, rest)) = data.split_first() else { return };
    let k = usize::from(head & 0x0f);
    if rest.len() < k * 3 {
        return;
    }
    let (spec, doc) = rest.split_at(k * 3);
    let mut ranges: Vec<std::ops::Range<usize>> = spec
        .chunks(3)
        .map(|c| {
            let start = usize::from(u16::from_be_bytes([c[0], c[1]]));
            start..start + usize::from(c[2]).max(1)
        })
        .filter(|r| r.end <= doc.len())
        .collect();
    ranges.sort_by_key(|r| r.start);
    // Sorted and non-overlapping, as the locator's callers guarantee.
    let mut last_end = 0;
    ranges.retain(|r| {
        let keep = r.start >= last_end;
        if keep {
            last_end = r.end;
        }
        keep
    });

    let located = json_locate(doc, &ranges);
    // serde_json skips the bytes of an ignored string without checking their UTF-8;
    // RFC 8259 text is UTF-8, as the locator requires.
    let serde = std::str::from_utf8(doc)
        .map_err(|_| serde::de::Error::custom("not UTF-8"))
        .and_then(serde_json::from_str::<serde::de::IgnoredAny>);
    let located = match located {
        Located::OverLimit => return,
        Located::NotJson => None,
        Located::Pointers(p) => Some(p),
    };
    match (&located, &serde) {
        (Some(_), Ok(_)) | (None, Err(_)) => {}
        (_, Err(e)) if e.to_string().contains("recursion limit") => return,
        (Some(_), Err(e)) => panic!("the locator accepts a document serde_json refuses: {e}"),
        (None, Ok(_)) => panic!("the locator refuses a document serde_json accepts"),
    }
    let Some(pointers) = located else { return };
    assert_eq!(pointers.len(), ranges.len());
    // Lone surrogate escapes are valid JSON text but not a serde_json::Value.
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(doc) else { return };
    for p in pointers.iter().flatten() {
        assert!(value.pointer(p).is_some(), "pointer {p:?} does not resolve in the document");
    }
});
