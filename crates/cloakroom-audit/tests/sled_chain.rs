//! The embedded sled sink: chaining, reopening, queries and tampering with stored bytes
//! (the values of its sled tree). The test bodies it shares with the segment store are in
//! `common/store_behaviour.rs`; this file says how sled's stored bytes are edited.
mod common;

use cloakroom_audit::SledSink;
use common::store_behaviour::{self as behaviour, LineEdit, CHAIN};

/// Edits the stored bytes of the chain: every record line of every run, in order, is
/// handed to `edit`; what it leaves is written back into the first run's value.
fn edit_tree_values(sink: &SledSink, edit: LineEdit<'_>) {
    let tree = sink.chain_tree(CHAIN).unwrap();
    let runs: Vec<(sled::IVec, sled::IVec)> = tree.scan_prefix(b"r").map(Result::unwrap).collect();
    let mut lines: Vec<Vec<u8>> = runs.iter().flat_map(|(_, v)| v.split(|b| *b == b'\n').map(<[u8]>::to_vec)).collect();
    edit(&mut lines);
    for (k, _) in &runs[1..] {
        tree.remove(k).unwrap();
    }
    tree.insert(&runs[0].0, lines.join(&b'\n')).unwrap();
}

#[tokio::test]
async fn records_chain_and_verify_and_survive_reopening() {
    behaviour::records_chain_and_verify_and_survive_reopening::<SledSink>().await;
}

#[tokio::test]
async fn queries_since_seq_and_time_and_by_call_id() {
    behaviour::queries_since_seq_and_time_and_by_call_id::<SledSink>().await;
}

#[tokio::test]
async fn altered_record_bytes_are_found() {
    behaviour::altered_record_bytes_are_found(edit_tree_values).await;
}

#[tokio::test]
async fn garbage_bytes_are_found() {
    behaviour::garbage_bytes_are_found(edit_tree_values).await;
}

#[tokio::test]
async fn removed_record_is_found() {
    behaviour::removed_record_is_found(edit_tree_values).await;
}

#[tokio::test]
async fn removed_first_record_is_found() {
    behaviour::removed_first_record_is_found(edit_tree_values).await;
}

#[tokio::test]
async fn reordered_records_are_found() {
    behaviour::reordered_records_are_found(edit_tree_values).await;
}

#[tokio::test]
async fn inserted_record_is_found() {
    behaviour::inserted_record_is_found(edit_tree_values).await;
}

#[tokio::test]
async fn untouched_store_verifies() {
    behaviour::untouched_store_verifies::<SledSink>().await;
}
