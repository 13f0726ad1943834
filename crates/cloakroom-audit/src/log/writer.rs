//! The writer task: takes jobs off the queue, seals batches into the chain and writes
//! them to every sink, acknowledging each append per the durability setting.

#[allow(clippy::wildcard_imports)]
use super::*;

pub(super) struct Writer {
    pub(super) rx: mpsc::Receiver<Job>,
    pub(super) sinks: Vec<Arc<dyn AuditSink>>,
    pub(super) metrics: Arc<AuditMetrics>,
    pub(super) durability: Durability,
    pub(super) on_failure: OnFailure,
}

pub(super) type Ack = oneshot::Sender<Result<(), AuditError>>;

impl Writer {
    pub(super) async fn run(mut self) {
        loop {
            let Some(first) = self.rx.recv().await else { return };
            let mut batch = Vec::new();
            // The batch's share of the queue's byte bound, given back once it is written.
            let mut rooms = Vec::new();
            let mut acks: Vec<Ack> = Vec::new();
            let mut flushes = Vec::new();
            let mut close = None;
            let deadline = match &first {
                Job::Record { queued, .. } => *queued + BATCH_WINDOW,
                _ => Instant::now(),
            };
            let mut next = Some(first);
            loop {
                match next.take() {
                    Some(Job::Record { record, ack, room, .. }) => {
                        batch.push(record);
                        rooms.push(room);
                        acks.extend(ack);
                    }
                    Some(Job::Flush(tx)) => {
                        flushes.push(tx);
                        break;
                    }
                    Some(Job::Close(tx)) => {
                        close = Some(tx);
                        break;
                    }
                    None => {}
                }
                if batch.len() >= MAX_BATCH {
                    break;
                }
                next = match self.rx.try_recv() {
                    Ok(j) => Some(j),
                    Err(mpsc::error::TryRecvError::Disconnected) => break,
                    Err(mpsc::error::TryRecvError::Empty) if self.durability == Durability::Batched => {
                        if Instant::now() >= deadline {
                            break;
                        }
                        // Sleep out the window and then take what came, rather than wake
                        // for every record: one wake-up per batch instead of one per call.
                        tokio::time::sleep_until(deadline).await;
                        continue;
                    }
                    Err(mpsc::error::TryRecvError::Empty) => break,
                };
            }
            if !batch.is_empty() {
                self.write(&batch, acks, close.is_some()).await;
            }
            drop(rooms);
            for f in flushes {
                let _ = f.send(());
            }
            if let Some(c) = close {
                // Write whatever is still queued, then stop.
                while let Ok(job) = self.rx.try_recv() {
                    match job {
                        Job::Record { record, ack, .. } => {
                            self.write(std::slice::from_ref(&record), ack.into_iter().collect(), true).await
                        }
                        Job::Flush(tx) | Job::Close(tx) => {
                            let _ = tx.send(());
                        }
                    }
                }
                self.rx.close();
                let _ = c.send(());
                return;
            }
        }
    }

    /// Writes one batch to every sink, retrying the sinks that failed until they
    /// succeed (or, when closing, giving up after a few tries).
    pub(super) async fn write(&self, batch: &[SealedRecord], mut acks: Vec<Ack>, closing: bool) {
        let mut done = vec![false; self.sinks.len()];
        let mut backoff = Duration::from_millis(50);
        let mut tries = 0;
        loop {
            tries += 1;
            for (sink, done) in self.sinks.iter().zip(done.iter_mut()) {
                if *done {
                    continue;
                }
                match sink.append(batch).await {
                    Ok(()) => *done = true,
                    Err(e) => {
                        AuditMetrics::add(&self.metrics.write_failures, 1);
                        tracing::warn!(sink = sink.kind(), error = %e, records = batch.len(), "audit write failed");
                    }
                }
            }
            if done.iter().all(|d| *d) {
                self.metrics.available.store(true, Ordering::Relaxed);
                AuditMetrics::add(&self.metrics.records_written, batch.len() as u64);
                AuditMetrics::add(&self.metrics.batches, 1);
                for a in acks.drain(..) {
                    let _ = a.send(Ok(()));
                }
                return;
            }
            self.metrics.available.store(false, Ordering::Relaxed);
            for a in acks.drain(..) {
                let _ = a.send(Err(AuditError::Unavailable));
            }
            // With `refuse` the batch is retried until it is written: calls are refused
            // meanwhile and nothing is lost. With `continue` (or when closing) it is given
            // up after a few tries, counted, and later records chain over the hole.
            if (closing || self.on_failure == OnFailure::Continue) && tries >= 3 {
                AuditMetrics::add(&self.metrics.records_lost, batch.len() as u64);
                return;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    }
}
