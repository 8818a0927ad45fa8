//! Capped byte sinks: the job log and a command module's stdout.
//!
//! A [`CappedBuf`] keeps at most `cap` bytes. Past that, bytes are dropped and counted;
//! the writer never sees an error (a guest's `println!` must not fail because of the
//! log cap). Whether overflowing matters is the reader's call: for the log it does not,
//! for a command's stdout (its result) it is an `output_limit` failure.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// A byte buffer that keeps at most `cap` bytes and counts the rest.
#[derive(Debug, Default)]
pub(crate) struct CappedBuf {
    pub(crate) bytes: Vec<u8>,
    pub(crate) cap: usize,
    pub(crate) dropped: u64,
}

impl CappedBuf {
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            bytes: Vec::new(),
            cap,
            dropped: 0,
        }
    }

    /// Appends what fits and counts the rest.
    pub(crate) fn push(&mut self, data: &[u8]) {
        let room = self.cap.saturating_sub(self.bytes.len());
        let take = room.min(data.len());
        self.bytes.extend_from_slice(&data[..take]);
        self.dropped += (data.len() - take) as u64;
    }

    pub(crate) fn overflowed(&self) -> bool {
        self.dropped > 0
    }
}

/// A shared [`CappedBuf`] usable as a WASI stdout/stderr.
#[derive(Debug, Clone)]
pub(crate) struct SharedSink(pub(crate) Arc<Mutex<CappedBuf>>);

impl SharedSink {
    pub(crate) fn new(cap: usize) -> Self {
        Self(Arc::new(Mutex::new(CappedBuf::new(cap))))
    }

    pub(crate) fn push(&self, data: &[u8]) {
        self.0.lock().expect("sink lock").push(data);
    }

    /// Takes the contents out, leaving an empty buffer.
    pub(crate) fn take(&self) -> CappedBuf {
        let mut g = self.0.lock().expect("sink lock");
        let cap = g.cap;
        std::mem::replace(&mut *g, CappedBuf::new(cap))
    }
}

impl IsTerminal for SharedSink {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for SharedSink {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

/// Largest single write a guest is offered; bounded so a guest cannot make the host
/// copy unbounded data in one call.
const MAX_WRITE: usize = 64 << 10;

impl OutputStream for SharedSink {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(MAX_WRITE)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for SharedSink {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for SharedSink {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.push(buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_up_to_cap_and_counts_the_rest() {
        let mut b = CappedBuf::new(10);
        b.push(b"hello ");
        b.push(b"world, again");
        assert_eq!(b.bytes, b"hello worl");
        assert_eq!(b.dropped, 8);
        assert!(b.overflowed());
    }
}
