//! A host's TCP stream that acknowledges what arrives at once.
//!
//! sshd leaves Nagle's algorithm on for a session without a terminal, which
//! is every session herd opens: a small packet it sends waits until the one
//! before it is acknowledged. Linux delays an acknowledgement by up to 40 ms
//! when the connection looks interactive, hoping to carry it on a reply; when
//! herd has nothing to reply, sshd's next packet waits those 40 ms. That
//! happens where sshd answers twice in a row: opening a session, and a
//! command whose output and exit come in separate writes. Turning
//! `TCP_QUICKACK` on after each read sends the acknowledgement right away.
//! The kernel turns it off again by itself, hence after each read.
//!
//! While herd streams an upload its own packets carry the acknowledgements,
//! and separate ones would only cost both ends: after a read that follows
//! more than `BULK` bytes written, the kernel is left to it.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

pub struct QuickAck {
    stream: TcpStream,
    written_since_read: usize,
}

/// Written between two reads, the sign of an upload under way.
const BULK: usize = 16 * 1024;

impl QuickAck {
    pub fn new(stream: TcpStream) -> QuickAck {
        QuickAck {
            stream,
            written_since_read: 0,
        }
    }
}

#[cfg(target_os = "linux")]
fn acknowledge_now(stream: &TcpStream) {
    use std::os::fd::AsRawFd;
    let on: libc::c_int = 1;
    // SAFETY: the descriptor is the stream's own, open while it is borrowed,
    // and the option's value is a c_int that outlives the call. A failure
    // only leaves the kernel's delayed acknowledgement in place.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_QUICKACK,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

#[cfg(not(target_os = "linux"))]
fn acknowledge_now(_stream: &TcpStream) {}

impl AsyncRead for QuickAck {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            if self.written_since_read < BULK {
                acknowledge_now(&self.stream);
            }
            self.written_since_read = 0;
        }
        polled
    }
}

impl AsyncWrite for QuickAck {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = polled {
            self.written_since_read = self.written_since_read.saturating_add(n);
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = polled {
            self.written_since_read = self.written_since_read.saturating_add(n);
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn set_quick_ack(stream: &TcpStream, on: bool) {
        let value: libc::c_int = on.into();
        // SAFETY: as in `acknowledge_now`.
        let code = unsafe {
            libc::setsockopt(
                stream.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_QUICKACK,
                (&value as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        assert_eq!(code, 0);
    }

    /// The kernel's answer: 1 when it acknowledges at once, 0 when it may wait.
    fn quick_ack(stream: &TcpStream) -> libc::c_int {
        let mut value: libc::c_int = -1;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: `value` and `len` are live and sized for the option.
        let code = unsafe {
            libc::getsockopt(
                stream.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_QUICKACK,
                (&mut value as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        assert_eq!(code, 0);
        value
    }

    async fn pair() -> (QuickAck, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (client, accepted) = tokio::join!(TcpStream::connect(address), listener.accept());
        (QuickAck::new(client.unwrap()), accepted.unwrap().0)
    }

    #[tokio::test]
    async fn a_read_turns_the_delayed_acknowledgement_off() {
        let (mut client, mut server) = pair().await;
        set_quick_ack(&client.stream, false);
        assert_eq!(quick_ack(&client.stream), 0);
        server.write_all(b"SSH-2.0-test\r\n").await.unwrap();
        let mut got = [0u8; 14];
        client.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"SSH-2.0-test\r\n");
        assert_eq!(quick_ack(&client.stream), 1);
    }

    #[tokio::test]
    async fn a_read_during_an_upload_leaves_the_kernel_to_acknowledge() {
        let (mut client, mut server) = pair().await;
        client.write_all(&vec![7u8; BULK + 1]).await.unwrap();
        let mut sent = vec![0u8; BULK + 1];
        server.read_exact(&mut sent).await.unwrap();
        set_quick_ack(&client.stream, false);
        server.write_all(b"ok").await.unwrap();
        let mut got = [0u8; 2];
        client.read_exact(&mut got).await.unwrap();
        assert_eq!(quick_ack(&client.stream), 0);

        // The next exchange is a small one again.
        client.write_all(b"next").await.unwrap();
        server.write_all(b"ok").await.unwrap();
        client.read_exact(&mut got).await.unwrap();
        assert_eq!(quick_ack(&client.stream), 1);
    }
}
