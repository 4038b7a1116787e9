//! Zero-copy responses: a stored file's bytes go from the page cache to a plain TCP socket with
//! `sendfile`, the way nginx serves files, instead of hyper copying them from memory into the
//! socket. On a 175 KB download that copy is most of what a request costs besides the TCP
//! stack itself.
//!
//! hyper only writes bytes it is given, so the two ends meet through the connection:
//! - a handler that serves a byte range of an open file answers with the real bytes as its body
//!   and a [`SendFromFile`] response extension naming the same bytes in the file;
//! - on a plain TCP connection, [`super::connection::ConnService`] swaps that body for a
//!   [`StandInBody`] of the same length: frames that point into [`STAND_IN`], a static run of
//!   zeroes, each queuing the file segment it stands for in the connection's [`SendQueue`]
//!   when hyper polls it;
//! - hyper queues those frames unread (it is built with vectored writes, which never copy a
//!   body) and hands them to [`super::connection::WatchedIo`], which recognises stand-in bytes
//!   by their address and sends the queued segment with `sendfile` in their place.
//!
//! A TLS connection has no queue and sends the real body; so does any response without the
//! extension. Stand-in bytes with no segment queued are an error that ends the connection: a
//! client is never sent zeroes for a document.

use axum::body::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::ops::Range;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{ready, Context, Poll};
use tokio::io::Interest;
use tokio::net::TcpStream;

/// The bytes every stand-in frame points into; their content is never sent.
static STAND_IN: [u8; STAND_IN_LEN] = [0; STAND_IN_LEN];
/// Largest stand-in frame (and so largest `sendfile` asked for at once).
const STAND_IN_LEN: usize = 256 * 1024;

/// A response extension: the response's body is exactly `range` of `file`, which nobody
/// rewrites while it is served (a finished document's bytes never change under their key).
#[derive(Clone, Debug)]
pub struct SendFromFile {
    pub file: Arc<File>,
    pub range: Range<u64>,
}

/// One run of file bytes standing in the write queue.
struct Segment {
    file: Arc<File>,
    offset: u64,
    remaining: usize,
}

/// The file segments of one connection that stand-in frames hyper holds are waiting for, in
/// the order hyper will write them (HTTP/1 writes one response after another).
#[derive(Clone, Default)]
pub struct SendQueue {
    segments: Arc<Mutex<VecDeque<Segment>>>,
}

impl SendQueue {
    fn push(&self, segment: Segment) {
        self.lock().push_back(segment);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Segment>> {
        self.segments.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Writes what `bufs` holds to `socket`: ordinary bytes with one vectored write up to the
    /// first stand-in slice, a stand-in slice at the front with `sendfile` from the segment it
    /// stands for. Returns how many bytes of `bufs` were consumed, as `poll_write_vectored`.
    pub fn poll_write<S: SendFileTo>(
        &self,
        socket: Pin<&mut S>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match bufs.iter().position(|buf| is_stand_in(buf)) {
            None => socket.poll_write_vectored(cx, bufs),
            Some(0) => self.poll_send_front(socket, cx, bufs[0].len()),
            // The head before a file segment is held back until the segment's bytes join it,
            // so a response leaves as full segments instead of a small one for the head.
            Some(first) => socket.get_mut().poll_write_more(cx, &bufs[..first]),
        }
    }

    /// Sends up to `len` stand-in bytes' worth of the front segment.
    fn poll_send_front<S: SendFileTo>(
        &self,
        socket: Pin<&mut S>,
        cx: &mut Context<'_>,
        len: usize,
    ) -> Poll<io::Result<usize>> {
        let (file, offset, count) = {
            let segments = self.lock();
            let Some(front) = segments.front() else {
                return Poll::Ready(Err(io::Error::other(
                    "stand-in bytes with no file segment queued for them",
                )));
            };
            (front.file.clone(), front.offset, front.remaining.min(len))
        };
        let sent = ready!(socket.get_mut().poll_send_file(cx, &file, offset, count))?;
        if sent == 0 && count > 0 {
            // The file ends early: it is not the file the response's length promised.
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "a file being sent is shorter than its recorded length",
            )));
        }
        let mut segments = self.lock();
        if let Some(front) = segments.front_mut() {
            front.offset += sent as u64;
            front.remaining -= sent;
            if front.remaining == 0 {
                segments.pop_front();
            }
        }
        Poll::Ready(Ok(sent))
    }
}

fn is_stand_in(buf: &[u8]) -> bool {
    let start = STAND_IN.as_ptr() as usize;
    let at = buf.as_ptr() as usize;
    !buf.is_empty() && at >= start && at + buf.len() <= start + STAND_IN_LEN
}

/// A socket that can send a file's bytes without copying them through the process.
pub trait SendFileTo: tokio::io::AsyncWrite + Unpin {
    /// Sends up to `count` bytes of `file` from `offset`; `Ok(0)` means the file ended.
    fn poll_send_file(
        &mut self,
        cx: &mut Context<'_>,
        file: &File,
        offset: u64,
        count: usize,
    ) -> Poll<io::Result<usize>>;

    /// Writes `bufs` saying more follows at once (`MSG_MORE`): the kernel may hold them back
    /// to send with what comes next.
    fn poll_write_more(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>>;
}

impl SendFileTo for TcpStream {
    fn poll_write_more(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let socket = &*self;
        poll_when_writable(socket, cx, || {
            rustix::net::sendmsg(
                socket,
                bufs,
                &mut rustix::net::SendAncillaryBuffer::default(),
                rustix::net::SendFlags::MORE | rustix::net::SendFlags::NOSIGNAL,
            )
            .map_err(io::Error::from)
        })
    }

    fn poll_send_file(
        &mut self,
        cx: &mut Context<'_>,
        file: &File,
        offset: u64,
        count: usize,
    ) -> Poll<io::Result<usize>> {
        let socket = &*self;
        poll_when_writable(socket, cx, || {
            let mut at = offset;
            rustix::fs::sendfile(socket, file, Some(&mut at), count).map_err(io::Error::from)
        })
    }
}

/// Runs the non-blocking `write` once `socket` is writable, and again after each readiness
/// that turns out spurious (`WouldBlock`, which also clears tokio's readiness flag).
fn poll_when_writable<T>(
    socket: &TcpStream,
    cx: &mut Context<'_>,
    mut write: impl FnMut() -> io::Result<T>,
) -> Poll<io::Result<T>> {
    loop {
        ready!(socket.poll_write_ready(cx))?;
        match socket.try_io(Interest::WRITABLE, &mut write) {
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => continue,
            written => return Poll::Ready(written),
        }
    }
}

/// A TLS session encrypts in the process: there is nothing to send from the page cache, and no
/// connection over TLS gets a [`SendQueue`], so this is never called.
impl<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin> SendFileTo
    for tokio_rustls::server::TlsStream<S>
{
    fn poll_write_more(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        tokio::io::AsyncWrite::poll_write_vectored(Pin::new(self), cx, bufs)
    }

    fn poll_send_file(
        &mut self,
        _cx: &mut Context<'_>,
        _file: &File,
        _offset: u64,
        _count: usize,
    ) -> Poll<io::Result<usize>> {
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "sendfile over TLS",
        )))
    }
}

/// A response body of stand-in frames for `range` of `file` (see the module documentation).
pub struct StandInBody {
    file: Arc<File>,
    range: Range<u64>,
    queue: SendQueue,
}

impl StandInBody {
    pub fn new(send: SendFromFile, queue: SendQueue) -> Self {
        Self {
            file: send.file,
            range: send.range,
            queue,
        }
    }
}

impl Body for StandInBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let left = self.range.end - self.range.start;
        if left == 0 {
            return Poll::Ready(None);
        }
        let len = usize::try_from(left).map_or(STAND_IN_LEN, |left| left.min(STAND_IN_LEN));
        let offset = self.range.start;
        self.range.start += len as u64;
        self.queue.push(Segment {
            file: self.file.clone(),
            offset,
            remaining: len,
        });
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(&STAND_IN[..len])))))
    }

    fn is_end_stream(&self) -> bool {
        self.range.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.range.end - self.range.start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A connected pair of loopback sockets; the first (the server's) has a small send buffer,
    /// so a `sendfile` stops part-way as it does under load.
    async fn pair() -> (TcpStream, TcpStream) {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_send_buffer_size(4096).unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let listener = socket.listen(8).unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap());
        let (client, accepted) = tokio::join!(client, listener.accept());
        (accepted.unwrap().0, client.unwrap())
    }

    fn file_of(bytes: &[u8]) -> Arc<File> {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(bytes).unwrap();
        Arc::new(file)
    }

    /// Writes `bufs` through the queue until all are consumed, as hyper's flush loop does.
    async fn write_all(queue: &SendQueue, socket: &mut TcpStream, bufs: &[&[u8]]) {
        let mut owned: Vec<&[u8]> = bufs.to_vec();
        while owned.iter().any(|b| !b.is_empty()) {
            let slices: Vec<io::IoSlice<'_>> = owned
                .iter()
                .filter(|b| !b.is_empty())
                .map(|b| io::IoSlice::new(b))
                .collect();
            let mut n = std::future::poll_fn(|cx| queue.poll_write(Pin::new(socket), cx, &slices))
                .await
                .unwrap();
            for b in owned.iter_mut() {
                let take = n.min(b.len());
                *b = &b[take..];
                n -= take;
            }
        }
        socket.flush().await.unwrap();
    }

    #[tokio::test]
    async fn stand_in_frames_are_sent_as_the_file_bytes_they_stand_for() {
        // Larger than one stand-in frame, so the body takes two segments.
        let content: Vec<u8> = (0..STAND_IN_LEN + 70_000)
            .map(|i| (i % 251) as u8)
            .collect();
        let file = file_of(&content);
        let queue = SendQueue::default();
        let range = 1000..content.len() as u64 - 5;
        let mut body = StandInBody::new(
            SendFromFile {
                file,
                range: range.clone(),
            },
            queue.clone(),
        );
        let mut frames = Vec::new();
        while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await
        {
            frames.push(frame.unwrap().into_data().unwrap());
        }
        assert_eq!(frames.len(), 2);
        let (mut server, mut client) = pair().await;
        let reader = tokio::spawn(async move {
            let mut received = Vec::new();
            client.read_to_end(&mut received).await.unwrap();
            received
        });
        let mut bufs: Vec<&[u8]> = vec![b"head:"];
        bufs.extend(frames.iter().map(|f| &f[..]));
        bufs.push(b":tail");
        write_all(&queue, &mut server, &bufs).await;
        drop(server);
        let received = reader.await.unwrap();
        let mut expected = b"head:".to_vec();
        expected.extend_from_slice(&content[range.start as usize..range.end as usize]);
        expected.extend_from_slice(b":tail");
        assert_eq!(received.len(), expected.len());
        assert!(received == expected, "the bytes sent are the file's");
        assert!(queue.lock().is_empty());
    }

    #[tokio::test]
    async fn stand_in_bytes_without_a_segment_are_an_error_not_zeroes() {
        let (mut server, _client) = pair().await;
        let queue = SendQueue::default();
        let slices = [io::IoSlice::new(&STAND_IN[..10])];
        let written =
            std::future::poll_fn(|cx| queue.poll_write(Pin::new(&mut server), cx, &slices)).await;
        assert!(written.is_err());
    }

    #[tokio::test]
    async fn a_file_shorter_than_promised_is_an_error() {
        let (mut server, _client) = pair().await;
        let queue = SendQueue::default();
        let mut body = StandInBody::new(
            SendFromFile {
                file: file_of(b"short"),
                range: 0..100,
            },
            queue.clone(),
        );
        let frame = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx))
            .await
            .unwrap()
            .unwrap()
            .into_data()
            .unwrap();
        let slices = [io::IoSlice::new(&frame)];
        let mut results = Vec::new();
        for _ in 0..2 {
            results.push(
                std::future::poll_fn(|cx| queue.poll_write(Pin::new(&mut server), cx, &slices))
                    .await,
            );
        }
        assert_eq!(results[0].as_ref().unwrap(), &5);
        assert_eq!(
            results[1].as_ref().unwrap_err().kind(),
            io::ErrorKind::UnexpectedEof
        );
    }
}
