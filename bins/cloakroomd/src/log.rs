//! Where the log's lines go: one in-memory buffer that a thread of its own writes to
//! stderr every [`FLUSH_EVERY`], so a serving thread neither makes a `write(2)` for each
//! call's `call finished` line nor wakes another thread for it.
//!
//! `tracing-appender`'s non-blocking writer was measured first: it hands each line to a
//! worker thread over a channel, which wakes that thread once per line whenever it has
//! caught up. On one connection that wake-up cost 15 % of cloakroomd's CPU
//! (docs/performance.md, "Cost per call"); a buffer written out on a clock costs the
//! serving thread a short lock and a copy per line, and 50 wake-ups a second in all.
//!
//! Nothing is dropped: a line that finds the buffer past [`HIGH_WATER`] (a stalled pipe
//! or journal) writes the buffer out itself before going on. Dropping the [`LogGuard`]
//! writes out what is left, so the last lines come before the reason the process stops.

use std::{
    io::Write,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex, MutexGuard,
    },
    thread::JoinHandle,
    time::Duration,
};

use tracing_subscriber::fmt::MakeWriter;

/// How often the buffer is written out: what a line can lag behind the event it tells of.
pub(crate) const FLUSH_EVERY: Duration = Duration::from_millis(20);

/// The buffer's size beyond which the thread that logs writes it out itself.
pub(crate) const HIGH_WATER: usize = 1 << 20;

struct Shared<W> {
    buf: Mutex<Vec<u8>>,
    out: Mutex<W>,
    stop: AtomicBool,
}

impl<W: Write> Shared<W> {
    fn lock_buf(&self) -> MutexGuard<'_, Vec<u8>> {
        // A panic while holding the lock leaves whole lines behind it: go on with them.
        self.buf.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes out what is buffered, in order: the output lock is taken before the
    /// buffer's, so two flushes cannot swap their batches.
    fn flush(&self) {
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        let batch = std::mem::take(&mut *self.lock_buf());
        if !batch.is_empty() {
            // Where stderr itself fails there is nowhere left to say so.
            let _ = out.write_all(&batch);
            let _ = out.flush();
        }
    }
}

/// The log's writer, for `tracing_subscriber::fmt::layer().with_writer(..)`.
pub(crate) struct LogBuffer<W> {
    shared: Arc<Shared<W>>,
}

/// Stops the flushing thread and writes out the rest when dropped.
pub(crate) struct LogGuard<W: Write + Send + 'static> {
    shared: Arc<Shared<W>>,
    thread: Option<JoinHandle<()>>,
}

/// A buffer in front of `out`, and the thread that writes it out every `every`.
pub(crate) fn buffered<W: Write + Send + 'static>(out: W, every: Duration) -> (LogBuffer<W>, LogGuard<W>) {
    let shared = Arc::new(Shared {
        buf: Mutex::new(Vec::with_capacity(64 << 10)),
        out: Mutex::new(out),
        stop: AtomicBool::new(false),
    });
    let flusher = shared.clone();
    let thread = std::thread::Builder::new()
        .name("cloakroom-log".into())
        .spawn(move || {
            while !flusher.stop.load(Ordering::Acquire) {
                std::thread::park_timeout(every);
                flusher.flush();
            }
        })
        .ok();
    (LogBuffer { shared: shared.clone() }, LogGuard { shared, thread })
}

impl<W: Write + Send + 'static> Drop for LogGuard<W> {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
        self.shared.flush();
    }
}

/// One event's writer: tracing-subscriber formats a whole line and writes it at once.
pub(crate) struct LineWriter<'a, W: Write> {
    shared: &'a Shared<W>,
}

impl<W: Write> Write for LineWriter<'_, W> {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        let full = {
            let mut buf = self.shared.lock_buf();
            buf.extend_from_slice(line);
            buf.len() >= HIGH_WATER
        };
        if full {
            self.shared.flush();
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a, W: Write + 'a> MakeWriter<'a> for LogBuffer<W> {
    type Writer = LineWriter<'a, W>;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter { shared: &self.shared }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `Write` the test can read back.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn text(s: &Sink) -> String {
        String::from_utf8(s.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn lines_are_written_out_by_the_clock_in_order() {
        let sink = Sink::default();
        let (buf, guard) = buffered(sink.clone(), Duration::from_millis(5));
        for i in 0..100 {
            buf.make_writer().write_all(format!("line {i}\n").as_bytes()).unwrap();
        }
        let want: String = (0..100).map(|i| format!("line {i}\n")).collect();
        for _ in 0..1000 {
            if text(&sink) == want {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(text(&sink), want, "the flushing thread wrote the lines out, in order");
        drop(guard);
    }

    #[test]
    fn dropping_the_guard_writes_out_the_rest() {
        let sink = Sink::default();
        // A clock that never comes round in the test: only the guard writes.
        let (buf, guard) = buffered(sink.clone(), Duration::from_secs(3600));
        buf.make_writer().write_all(b"last words\n").unwrap();
        drop(guard);
        assert_eq!(text(&sink), "last words\n");
    }

    #[test]
    fn a_full_buffer_is_written_out_by_the_thread_that_logs() {
        let sink = Sink::default();
        let (buf, guard) = buffered(sink.clone(), Duration::from_secs(3600));
        let line = vec![b'x'; 4096];
        for _ in 0..(HIGH_WATER / line.len()) {
            buf.make_writer().write_all(&line).unwrap();
        }
        // Nothing waits on the clock once the buffer passes its high water mark.
        assert_eq!(sink.0.lock().unwrap().len(), HIGH_WATER, "no line lost or held back");
        drop(guard);
    }

    #[test]
    fn lines_from_many_threads_are_not_interleaved_or_lost() {
        let sink = Sink::default();
        let (buf, guard) = buffered(sink.clone(), Duration::from_millis(1));
        let buf = Arc::new(buf);
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let buf = buf.clone();
                std::thread::spawn(move || {
                    for i in 0..2000 {
                        buf.make_writer().write_all(format!("t{t} {i:05} {}\n", "y".repeat(200)).as_bytes()).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        drop(guard);
        let out = text(&sink);
        assert_eq!(out.lines().count(), 8000);
        for t in 0..4 {
            let mine: Vec<_> = out.lines().filter(|l| l.starts_with(&format!("t{t} "))).collect();
            assert_eq!(mine.len(), 2000);
            assert!(mine.windows(2).all(|w| w[0] < w[1]), "thread {t}'s lines are in order");
            assert!(mine.iter().all(|l| l.len() == 209 && l.ends_with(&"y".repeat(200))), "whole lines");
        }
    }
}
