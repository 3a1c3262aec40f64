//! An artifact a step ships from the controller: one file, a directory, or
//! a tar archive to unpack. The plan only checks that it is there and
//! readable; its bytes are read when a host's upload streams them, with a
//! bounded buffer, once per host (never held whole in memory), and its
//! SHA-256 is computed once per run, by the first host that needs it.

mod digest;
mod stream;

use std::path::{Path, PathBuf};

use tokio::sync::OnceCell;

pub use digest::{directory_digest, file_digest};
pub use stream::Source;

/// What an artifact is, and so how it lands on a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// One regular file, written to `dest`.
    File,
    /// A directory tree, sent as a tar stream built on the fly and unpacked
    /// at `dest`.
    Directory,
    /// A tar archive (gzip-compressed or not), unpacked at `dest`.
    Archive { gzip: bool },
}

/// A file or directory on the controller, and its digest once known.
#[derive(Debug)]
pub struct Artifact {
    pub path: PathBuf,
    pub kind: Kind,
    /// The bytes a host is sent, when known before sending (not for a
    /// directory, whose tar stream is built as it goes).
    pub size: Option<u64>,
    digest: OnceCell<String>,
}

impl PartialEq for Artifact {
    fn eq(&self, other: &Self) -> bool {
        self.path == other.path && self.kind == other.kind
    }
}

impl Eq for Artifact {}

impl Artifact {
    /// The source of an `upload`: a regular file or a directory.
    pub fn upload(path: &Path) -> Result<Artifact, String> {
        let meta = std::fs::metadata(path)
            .map_err(|e| format!("cannot read upload source {}: {e}", path.display()))?;
        let kind = if meta.is_dir() {
            std::fs::read_dir(path)
                .map_err(|e| format!("cannot read upload source {}: {e}", path.display()))?;
            Kind::Directory
        } else if meta.is_file() {
            std::fs::File::open(path)
                .map_err(|e| format!("cannot read upload source {}: {e}", path.display()))?;
            Kind::File
        } else {
            return Err(format!(
                "upload source {} is neither a regular file nor a directory",
                path.display()
            ));
        };
        let size = (kind == Kind::File).then_some(meta.len());
        Ok(Artifact::new(path, kind, size))
    }

    /// The source of an `archive`: a regular file that starts like a gzip
    /// stream or a tar archive (only its first block is read).
    pub fn archive(path: &Path) -> Result<Artifact, String> {
        let cannot = |e: std::io::Error| format!("cannot read archive {}: {e}", path.display());
        let meta = std::fs::metadata(path).map_err(cannot)?;
        if !meta.is_file() {
            return Err(format!(
                "archive {} is not a regular file: `archive` takes a .tar or .tar.gz file",
                path.display()
            ));
        }
        let mut head = Vec::with_capacity(512);
        {
            use std::io::Read;
            std::fs::File::open(path)
                .map_err(cannot)?
                .take(512)
                .read_to_end(&mut head)
                .map_err(cannot)?;
        }
        let gzip = head.starts_with(&[0x1f, 0x8b]);
        let tar = head.len() >= 262 && &head[257..262] == b"ustar";
        if !gzip && !tar {
            return Err(format!(
                "archive {} is neither a gzip-compressed nor a plain tar archive",
                path.display()
            ));
        }
        Ok(Artifact::new(
            path,
            Kind::Archive { gzip },
            Some(meta.len()),
        ))
    }

    fn new(path: &Path, kind: Kind, size: Option<u64>) -> Artifact {
        Artifact {
            path: path.to_path_buf(),
            kind,
            size,
            digest: OnceCell::new(),
        }
    }

    /// The SHA-256 (hex) of the file, or of a directory's canonical listing
    /// (see [`directory_digest`]). Computed on the first call, on a blocking
    /// thread; every later call, from any host, gets the same value.
    pub async fn digest(&self) -> Result<String, String> {
        self.digest
            .get_or_try_init(|| async {
                let path = self.path.clone();
                let kind = self.kind;
                let computed = tokio::task::spawn_blocking(move || match kind {
                    Kind::Directory => directory_digest(&path),
                    _ => file_digest(&path),
                })
                .await
                .map_err(|e| format!("computing the digest of {}: {e}", self.path.display()))?;
                computed.map_err(|e| format!("cannot read {}: {e}", self.path.display()))
            })
            .await
            .cloned()
    }

    /// A fresh stream of the bytes to send: the file itself, or a tar
    /// stream of the directory.
    pub async fn open(&self) -> Result<Source, String> {
        let opened = match self.kind {
            Kind::Directory => Ok(Source::tar_of(self.path.clone())),
            _ => Source::file(&self.path).await,
        };
        opened.map_err(|e| format!("cannot read {}: {e}", self.path.display()))
    }
}

/// How `herd plan` shows a step shipping `artifact` to `dest`.
pub fn describe(artifact: &Artifact, dest: &str, mode: Option<u32>) -> String {
    let mode = match (artifact.kind, mode) {
        (Kind::File, None) => " (mode 644)".to_string(),
        (_, None) => String::new(),
        (_, Some(m)) => format!(" (mode {m:o})"),
    };
    let what = match artifact.kind {
        Kind::File => "upload",
        Kind::Directory => "upload directory",
        Kind::Archive { .. } => "unpack archive",
    };
    format!("{what} {} -> {dest}{mode}", artifact.path.display())
}
