use super::*;

#[test]
fn chain_ids_are_encoded_to_safe_names_and_back() {
    for id in ["replica-a", "gw_eu_1", ".", "..", "a/b", "x y%", "ünï", "3f0c-AA"] {
        let name = encode_chain_id(id);
        assert!(name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'%'), "{name}");
        assert!(name != "." && name != "..");
        assert_eq!(decode_chain_id(&name).as_deref(), Some(id));
    }
    assert_eq!(encode_chain_id(".."), "%2E%2E");
    assert_eq!(decode_chain_id("a.b"), None);
    assert_eq!(decode_chain_id("%2"), None);
    assert_eq!(decode_chain_id("%2e%2E"), None, "not the name the id is stored under");
    assert_eq!(decode_chain_id("%61"), None);
    assert_eq!(decode_chain_id(""), None);
}

#[test]
fn last_line_ignores_a_partial_tail_only_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.log");
    let read = |bytes: &[u8], complete_only| {
        fs::write(&path, bytes).unwrap();
        last_line(&File::open(&path).unwrap(), complete_only).unwrap()
    };
    assert_eq!(read(b"a\nbb\ncc", true), Some(b"bb".to_vec()));
    assert_eq!(read(b"a\nbb\ncc", false), Some(b"cc".to_vec()));
    assert_eq!(read(b"a\nbb\n", true), Some(b"bb".to_vec()));
    assert_eq!(read(b"bb\n", true), Some(b"bb".to_vec()));
    assert_eq!(read(b"bb", true), None);
    assert_eq!(read(b"", true), None);
    let long = [vec![b'x'; 300_000], b"\n".to_vec(), vec![b'y'; 200_000], b"\n".to_vec()].concat();
    assert_eq!(read(&long, true), Some(vec![b'y'; 200_000]));
}
