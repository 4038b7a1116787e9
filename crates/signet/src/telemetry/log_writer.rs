//! Where log lines go: a buffer that a background thread writes to standard error, so a request
//! never waits for a `write(2)` of its access line. The first line after a quiet spell wakes the
//! thread, which writes it at once; then the thread lingers [`LINGER`] before it looks again, and
//! whatever came meanwhile goes out in one write, without waking anyone. Under load that is one
//! system call per batch instead of one (and a wake-up) per line.
//!
//! Bounded: past [`MAX_PENDING`] bytes waiting (standard error is slow or blocked), the thread
//! that logs writes the batch itself, in order, as an unbuffered log would. Nothing is dropped.
//! [`flush`] writes what waits; the process calls it before it exits and when it panics. A
//! `kill -9` loses the lines not yet written, which is at most the last moment's.

use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};

/// Most bytes kept waiting before the logging thread writes them itself.
const MAX_PENDING: usize = 1 << 20;

/// How long the thread collects lines after writing a batch.
const LINGER: std::time::Duration = std::time::Duration::from_millis(5);

/// The process's log writer, once [`LogWriter::install`] ran.
static INSTALLED: OnceLock<LogWriter> = OnceLock::new();

/// A `MakeWriter` for `tracing_subscriber` that hands each line to the background thread.
#[derive(Clone)]
pub struct LogWriter {
    shared: Arc<Shared>,
}

struct Shared {
    /// Lines waiting to be written, in the order they were logged.
    pending: Mutex<Pending>,
    /// Signalled when a line arrives while the thread sleeps.
    wake: Condvar,
    /// Standard error, held while writing: whoever takes a batch takes it under this lock, so
    /// batches are written in the order they were taken.
    out: Mutex<Box<dyn Write + Send>>,
}

#[derive(Default)]
struct Pending {
    bytes: Vec<u8>,
    /// The thread waits for a wake-up (rather than lingering).
    asleep: bool,
}

impl LogWriter {
    /// The process's writer, starting its thread the first time; `None` when the thread cannot
    /// be started (the caller then logs straight to standard error).
    pub fn install() -> Option<LogWriter> {
        if let Some(writer) = INSTALLED.get() {
            return Some(writer.clone());
        }
        let writer = LogWriter {
            shared: Arc::new(Shared {
                pending: Mutex::new(Pending::default()),
                wake: Condvar::new(),
                out: Mutex::new(Box::new(std::io::stderr())),
            }),
        };
        let shared = writer.shared.clone();
        std::thread::Builder::new()
            .name("signet-log".into())
            .spawn(move || shared.run())
            .ok()?;
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            flush();
            previous(info);
        }));
        Some(INSTALLED.get_or_init(|| writer).clone())
    }
}

/// Writes every line still waiting (before the process exits).
pub fn flush() {
    if let Some(writer) = INSTALLED.get() {
        writer.shared.write_pending();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    /// The background thread: waits for lines, writes them.
    fn run(&self) {
        loop {
            {
                let mut pending = lock(&self.pending);
                while pending.bytes.is_empty() {
                    pending.asleep = true;
                    pending = self
                        .wake
                        .wait(pending)
                        .unwrap_or_else(PoisonError::into_inner);
                }
                pending.asleep = false;
            }
            self.write_pending();
            std::thread::sleep(LINGER);
        }
    }

    /// Takes what waits and writes it, under the `out` lock.
    fn write_pending(&self) {
        let mut out = lock(&self.out);
        let batch = std::mem::take(&mut lock(&self.pending).bytes);
        if !batch.is_empty() {
            // A log that cannot be written must not stop the server: the lines are lost.
            let _ = out.write_all(&batch);
        }
    }

    fn append(&self, line: &[u8]) {
        let mut pending = lock(&self.pending);
        pending.bytes.extend_from_slice(line);
        let over = pending.bytes.len() > MAX_PENDING;
        let wake = pending.asleep;
        pending.asleep = false;
        drop(pending);
        if over {
            self.write_pending();
        } else if wake {
            self.wake.notify_one();
        }
    }
}

/// One event's writer: tracing-subscriber formats the line and writes it whole.
pub struct LineSink<'a> {
    shared: &'a Shared,
}

impl Write for LineSink<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.shared.append(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LineSink<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        LineSink {
            shared: &self.shared,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer into memory the test can read.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            lock(&self.0).extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn shared(out: &Captured) -> Arc<Shared> {
        Arc::new(Shared {
            pending: Mutex::new(Pending::default()),
            wake: Condvar::new(),
            out: Mutex::new(Box::new(out.clone())),
        })
    }

    #[test]
    fn lines_wait_in_order_until_written() {
        let out = Captured::default();
        let shared = shared(&out);
        let mut sink = LineSink { shared: &shared };
        sink.write_all(b"one\n").unwrap();
        sink.write_all(b"two\n").unwrap();
        assert!(lock(&out.0).is_empty());
        shared.write_pending();
        assert_eq!(&*lock(&out.0), b"one\ntwo\n");
    }

    #[test]
    fn the_thread_writes_what_is_logged_without_being_asked() {
        let out = Captured::default();
        let shared = shared(&out);
        let thread = shared.clone();
        std::thread::spawn(move || thread.run());
        shared.append(b"line\n");
        for _ in 0..500 {
            if !lock(&out.0).is_empty() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(&*lock(&out.0), b"line\n");
    }

    #[test]
    fn past_the_bound_the_logging_thread_writes_the_batch_itself() {
        let out = Captured::default();
        let shared = shared(&out);
        let line = vec![b'x'; MAX_PENDING / 2 + 1];
        shared.append(&line);
        assert_eq!(lock(&shared.pending).bytes.len(), line.len());
        shared.append(&line);
        assert!(lock(&shared.pending).bytes.is_empty(), "written, not kept");
        assert_eq!(lock(&out.0).len(), 2 * line.len());
    }
}
