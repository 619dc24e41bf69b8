//! Capturing what a test logs, so it can assert that no password, hash or username appears.

use std::sync::{Arc, Mutex};

/// A shared, growing buffer a `tracing` subscriber writes into (clone it into the writer).
#[derive(Debug, Clone, Default)]
pub struct Buffer(pub Arc<Mutex<Vec<u8>>>);

impl Buffer {
    /// Everything written so far, as text (which must be UTF-8: the formatters write JSON or
    /// plain text, so anything else is itself a finding).
    pub fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

impl std::io::Write for Buffer {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Captures this thread's log output at debug level (the SDK's own lines included) until the
/// guard drops. Only this thread: the test should run on a current-thread runtime.
pub fn capture_logs() -> (Buffer, tracing::subscriber::DefaultGuard) {
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_writer(move || writer.clone())
        .finish();
    (buffer, tracing::subscriber::set_default(subscriber))
}
