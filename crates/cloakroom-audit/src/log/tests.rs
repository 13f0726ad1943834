use super::*;

/// Replaces one secret, like the gateway's masker would.
fn knows_hunter2(bytes: &[u8]) -> Vec<u8> {
    String::from_utf8_lossy(bytes).replace("hunter2!", "cloak_pw").into_bytes()
}

fn record() -> AuditRecord {
    let mut r = AuditRecord::new(CallId::new(), time::OffsetDateTime::UNIX_EPOCH);
    r.function = Some("echo".into());
    r.request.method = "POST".into();
    r.request.path = "/fn/echo?q=1".into();
    r.request.headers.insert("x-note".into(), vec!["nothing \"quoted\"\n".into()]);
    r.request.body = Some(RecordBody::capture(b"{\"a\":\"here\"}", 12, 1024));
    r
}

#[test]
fn a_clean_record_needs_no_per_string_pass() {
    assert!(!holds_secret(&Rendered::new(&record()), &knows_hunter2));
}

#[test]
fn a_secret_in_any_string_or_key_is_found_by_the_joined_scan() {
    type Plant = fn(&mut AuditRecord);
    let plants: [Plant; 5] = [
        |r| r.request.path = "/fn/echo?pw=hunter2!".into(),
        |r| drop(r.request.headers.insert("hunter2!".into(), vec!["v".into()])),
        |r| r.response.body = Some(RecordBody::capture(b"{\"pw\":\"hunter2!\"}", 17, 1024)),
        // Escaped in the text: the scan sees the unescaped string.
        |r| r.request.headers.get_mut("x-note").unwrap().push("\"hunter2!\"\t".into()),
        |r| r.source_ip = Some("hunter2!".into()),
    ];
    for plant in plants {
        let mut r = record();
        plant(&mut r);
        assert!(holds_secret(&Rendered::new(&r), &knows_hunter2), "{r:?}");
        let mut redacted = serde_json::to_value(&r).unwrap();
        redact_strings(&mut redacted, &knows_hunter2).unwrap();
        assert!(!redacted.to_string().contains("hunter2"), "{redacted}");
    }
}

/// An export sink that writes nothing until `open` has permits: the writer stalls.
struct Stalled {
    open: Arc<tokio::sync::Semaphore>,
}

#[async_trait::async_trait]
impl AuditSink for Stalled {
    fn kind(&self) -> &'static str {
        "stalled"
    }

    async fn append(&self, _batch: &[SealedRecord]) -> Result<(), SinkError> {
        self.open.acquire().await.expect("open").forget();
        Ok(())
    }
}

#[tokio::test]
async fn the_queue_holds_a_bounded_number_of_bytes_while_the_writer_is_stalled() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SegmentStore::open(dir.path()).await.unwrap());
    let open = Arc::new(tokio::sync::Semaphore::new(0));
    let mut options = LogOptions::from_config(&AuditConfig::default(), "bounded");
    options.durability = Durability::Batched;
    options.queue_bytes = 64 << 10;
    let log = AuditLog::with_sinks(
        store,
        Some(Arc::new(Stalled { open: open.clone() })),
        options,
        Arc::new(crate::NoRedaction),
    )
    .await
    .unwrap();
    let big = || {
        let mut r = record();
        r.response.body = Some(RecordBody::capture("x".repeat(8 << 10).as_bytes(), 8 << 10, 16 << 10));
        r
    };
    // Records of ~8.5 KB each: a 64 KiB queue takes seven or so, then has no room.
    let mut queued = 0;
    let busy = loop {
        match log.append_now(big()) {
            AppendNow::Done(r) => {
                r.unwrap();
                queued += 1;
                assert!(queued < 16, "the queue took {queued} records of 8 KiB: no byte bound");
            }
            AppendNow::Busy(ready) => break ready,
            AppendNow::Durable(..) => unreachable!("batched"),
        }
    };
    assert!(queued >= 4, "a 64 KiB queue took only {queued} records of 8 KiB");
    // The record that found no room waits for the writer, and is written once it moves.
    let waiting = tokio::spawn({
        let log = log.clone();
        async move { log.append_ready(busy).await }
    });
    open.add_permits(1 << 20);
    let appended = waiting.await.unwrap().unwrap();
    assert_eq!(appended.seq, queued + 1, "chain order is kept");
    log.close().await;
    assert!(log.verify().await.unwrap().is_ok());
}
