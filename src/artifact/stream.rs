//! The bytes of an artifact as a stream: a file read as it is sent, or a
//! tar stream of a directory built on a blocking thread and handed over in
//! chunks through a small bounded channel, so memory stays flat whatever
//! the size of the tree.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, ReadBuf};
use tokio::sync::mpsc;

/// Bytes handed over at once from the tar builder.
const CHUNK: usize = 64 * 1024;
/// Chunks in flight between the tar builder and the upload.
const CHUNKS_IN_FLIGHT: usize = 4;

/// A readable artifact stream.
pub enum Source {
    File(tokio::fs::File),
    Tar(TarReader),
}

impl Source {
    pub async fn file(path: &Path) -> std::io::Result<Source> {
        Ok(Source::File(tokio::fs::File::open(path).await?))
    }

    /// A tar stream of the tree at `root`: entries named `./...`, the root
    /// itself included, symlinks stored as links, permission bits kept.
    pub fn tar_of(root: PathBuf) -> Source {
        let (sender, receiver) = mpsc::channel(CHUNKS_IN_FLIGHT);
        tokio::task::spawn_blocking(move || {
            let mut writer = ChunkWriter {
                sender: sender.clone(),
                buffer: Vec::with_capacity(CHUNK),
            };
            let built = (|| {
                let mut builder = tar::Builder::new(&mut writer);
                builder.follow_symlinks(false);
                builder.mode(tar::HeaderMode::Complete);
                builder.append_dir_all(".", &root)?;
                builder.into_inner()?.flush()
            })();
            // A failure reaches the reader as a read error; a reader that
            // went away (the upload failed) stops the builder the same way.
            if let Err(error) = built {
                let _ = sender.blocking_send(Err(error));
            }
        });
        Source::Tar(TarReader {
            receiver,
            chunk: Vec::new(),
            at: 0,
        })
    }
}

impl AsyncRead for Source {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Source::File(file) => Pin::new(file).poll_read(cx, buf),
            Source::Tar(reader) => Pin::new(reader).poll_read(cx, buf),
        }
    }
}

/// The reading end of a tar stream.
pub struct TarReader {
    receiver: mpsc::Receiver<std::io::Result<Vec<u8>>>,
    chunk: Vec<u8>,
    at: usize,
}

impl AsyncRead for TarReader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        while this.at == this.chunk.len() {
            match this.receiver.poll_recv(cx) {
                Poll::Pending => return Poll::Pending,
                // The builder is done: the end of the stream.
                Poll::Ready(None) => return Poll::Ready(Ok(())),
                Poll::Ready(Some(Err(error))) => return Poll::Ready(Err(error)),
                Poll::Ready(Some(Ok(chunk))) => {
                    this.chunk = chunk;
                    this.at = 0;
                }
            }
        }
        let n = buf.remaining().min(this.chunk.len() - this.at);
        buf.put_slice(&this.chunk[this.at..this.at + n]);
        this.at += n;
        Poll::Ready(Ok(()))
    }
}

/// The writing end: collects the builder's small writes into chunks.
struct ChunkWriter {
    sender: mpsc::Sender<std::io::Result<Vec<u8>>>,
    buffer: Vec<u8>,
}

impl ChunkWriter {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buffer, Vec::with_capacity(CHUNK));
        self.sender
            .blocking_send(Ok(chunk))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the upload stopped"))
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let n = data.len().min(CHUNK - self.buffer.len());
        self.buffer.extend_from_slice(&data[..n]);
        if self.buffer.len() == CHUNK {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn a_directory_streams_as_a_tar_that_keeps_modes_and_links() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir(root.join("bin")).unwrap();
        std::fs::write(root.join("bin/run"), "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(root.join("bin/run"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        // Bigger than a chunk, so it crosses several.
        std::fs::write(root.join("big"), vec![b'x'; CHUNK * 3 + 1]).unwrap();
        std::os::unix::fs::symlink("bin/run", root.join("start")).unwrap();

        let mut bytes = Vec::new();
        Source::tar_of(root.to_path_buf())
            .read_to_end(&mut bytes)
            .await
            .unwrap();

        let mut archive = tar::Archive::new(bytes.as_slice());
        let mut seen = Vec::new();
        for entry in archive.entries().unwrap() {
            let entry = entry.unwrap();
            let header = entry.header();
            let path = entry.path().unwrap().display().to_string();
            let what = match header.entry_type() {
                tar::EntryType::Symlink => {
                    format!("link -> {}", entry.link_name().unwrap().unwrap().display())
                }
                tar::EntryType::Directory => "dir".to_string(),
                _ => format!(
                    "{:o} {}",
                    header.mode().unwrap() & 0o777,
                    header.size().unwrap()
                ),
            };
            seen.push(format!("{path}: {what}"));
        }
        seen.sort();
        assert!(seen.contains(&"bin/run: 755 10".to_string()), "{seen:?}");
        assert!(
            seen.contains(&"start: link -> bin/run".to_string()),
            "{seen:?}"
        );
        assert!(
            seen.iter()
                .any(|s| s.starts_with("big: ") && s.ends_with(&format!(" {}", CHUNK * 3 + 1))),
            "{seen:?}"
        );
    }

    #[tokio::test]
    async fn an_unreadable_tree_is_a_read_error() {
        let mut bytes = Vec::new();
        let read = Source::tar_of(PathBuf::from("/nonexistent/herd-artifact"))
            .read_to_end(&mut bytes)
            .await;
        assert!(read.is_err(), "{read:?}");
    }
}
