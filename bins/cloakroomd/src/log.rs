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
//! Nothing is dropped while stderr takes writes: a line that finds the buffer past
//! [`HIGH_WATER`] (a stalled pipe or journal) writes the buffer out itself before going
//! on. `WARN` and `ERROR` lines, and a panic, write the buffer out at once: the lines
//! just before a failure are the ones worth having. Dropping the [`LogGuard`] writes out
//! what is left, so the last lines come before the reason the process stops, but waits
//! at most [`EXIT_WAIT`] for a stderr that takes no writes: a stuck log reader must not
//! keep the process from exiting (the audit log is flushed before).

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

/// How long dropping the [`LogGuard`] waits for the last lines to be written.
pub(crate) const EXIT_WAIT: Duration = Duration::from_secs(1);

struct Shared<W> {
    buf: Mutex<Vec<u8>>,
    out: Mutex<W>,
    stop: AtomicBool,
    /// No flushing thread could be started: every line is written out at once.
    direct: AtomicBool,
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
        write_out(&mut *out, self.lock_buf());
    }

    /// [`flush`](Self::flush) unless another thread is writing (or this one holds the
    /// buffer): for the panic hook, which must not wait or deadlock.
    fn flush_if_free(&self) {
        let Ok(mut out) = self.out.try_lock() else { return };
        let Ok(buf) = self.buf.try_lock() else { return };
        write_out(&mut *out, buf);
    }
}

/// Takes what `buf` holds, lets go of it, and writes it to `out` (held by the caller).
fn write_out<W: Write>(out: &mut W, mut buf: MutexGuard<'_, Vec<u8>>) {
    let batch = std::mem::take(&mut *buf);
    drop(buf);
    if !batch.is_empty() {
        // Where stderr itself fails there is nowhere left to say so.
        let _ = out.write_all(&batch);
        let _ = out.flush();
    }
}

/// The log's writer, for `tracing_subscriber::fmt::layer().with_writer(..)`.
pub(crate) struct LogBuffer<W> {
    shared: Arc<Shared<W>>,
}

/// Stops the flushing thread, which writes out the rest, when dropped.
pub(crate) struct LogGuard<W: Write + Send + 'static> {
    shared: Arc<Shared<W>>,
    thread: Option<(JoinHandle<()>, std::sync::mpsc::Receiver<()>)>,
}

/// A buffer in front of `out`, and the thread that writes it out every `every`.
pub(crate) fn buffered<W: Write + Send + 'static>(out: W, every: Duration) -> (LogBuffer<W>, LogGuard<W>) {
    let shared = Arc::new(Shared {
        buf: Mutex::new(Vec::with_capacity(64 << 10)),
        out: Mutex::new(out),
        stop: AtomicBool::new(false),
        direct: AtomicBool::new(false),
    });
    let flusher = shared.clone();
    // Dropped when the thread ends: the guard waits on it with a deadline.
    let (done, ended) = std::sync::mpsc::channel::<()>();
    let thread = std::thread::Builder::new().name("cloakroom-log".into()).spawn(move || {
        let _done = done;
        loop {
            std::thread::park_timeout(every);
            // A stop is seen only after a flush: the lines logged before it go out.
            let stop = flusher.stop.load(Ordering::Acquire);
            flusher.flush();
            if stop {
                break;
            }
        }
    });
    let thread = match thread {
        Ok(t) => Some((t, ended)),
        Err(e) => {
            shared.direct.store(true, Ordering::Relaxed);
            eprintln!("cloakroomd: no thread for the log ({e}); every line is written at once");
            None
        }
    };
    // A panic writes out the lines before it, ahead of the panic's own message.
    let on_panic = Arc::downgrade(&shared);
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if let Some(shared) = on_panic.upgrade() {
            shared.flush_if_free();
        }
        previous(info);
    }));
    (LogBuffer { shared: shared.clone() }, LogGuard { shared, thread })
}

impl<W: Write + Send + 'static> Drop for LogGuard<W> {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        match self.thread.take() {
            Some((t, ended)) => {
                t.thread().unpark();
                // The thread writes out the rest; a stderr that takes no writes is not
                // waited on past EXIT_WAIT (the thread is left blocked, and the process
                // exits).
                if let Err(std::sync::mpsc::RecvTimeoutError::Disconnected) = ended.recv_timeout(EXIT_WAIT) {
                    let _ = t.join();
                }
            }
            None => self.shared.flush(),
        }
    }
}

/// One event's writer: tracing-subscriber formats a whole line and writes it at once.
pub(crate) struct LineWriter<'a, W: Write> {
    shared: &'a Shared<W>,
    /// A `WARN` or `ERROR` line: written out with what is before it at once.
    urgent: bool,
}

impl<W: Write> Write for LineWriter<'_, W> {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        let full = {
            let mut buf = self.shared.lock_buf();
            buf.extend_from_slice(line);
            buf.len() >= HIGH_WATER
        };
        if full || self.urgent || self.shared.direct.load(Ordering::Relaxed) {
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
        LineWriter { shared: &self.shared, urgent: false }
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> Self::Writer {
        LineWriter { shared: &self.shared, urgent: *meta.level() <= tracing::Level::WARN }
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
    fn warnings_and_errors_are_written_out_at_once_with_the_lines_before_them() {
        let sink = Sink::default();
        let (buf, guard) = buffered(sink.clone(), Duration::from_secs(3600));
        let subscriber = tracing_subscriber::fmt().with_writer(buf).with_ansi(false).finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!("an ordinary line");
            assert_eq!(text(&sink), "", "an info line waits for the clock");
            tracing::warn!("something is wrong");
        });
        let out = text(&sink);
        assert!(out.contains("an ordinary line") && out.contains("something is wrong"), "{out}");
        assert!(out.find("an ordinary line") < out.find("something is wrong"));
        drop(guard);
    }

    /// A `Write` that never returns, like a pipe whose reader stopped reading.
    struct Stuck(std::sync::mpsc::Receiver<()>);

    impl Write for Stuck {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            let _ = self.0.recv();
            Err(std::io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_stuck_stderr_does_not_keep_the_process_from_exiting() {
        let (_keep, never) = std::sync::mpsc::channel();
        let (buf, guard) = buffered(Stuck(never), Duration::from_millis(1));
        buf.make_writer().write_all(b"into a pipe nobody reads\n").unwrap();
        std::thread::sleep(Duration::from_millis(20));
        let started = std::time::Instant::now();
        drop(guard);
        assert!(started.elapsed() < EXIT_WAIT * 3, "the guard waited {:?}", started.elapsed());
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
