//! How herd talks to a host, in transport terms only.
//!
//! The engine asks a [`Connector`] for one [`Connection`] per host and runs
//! every step over it. Nothing here knows about playbooks or rollouts: a
//! connection runs a command and returns its exit code and output, streams
//! bytes to a path, and that is all. The SSH implementation lives in `ssh`;
//! a scripted fake for engine tests lives in `fake`.

pub mod ssh;
pub mod temp_name;

#[cfg(test)]
pub mod fake;

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

/// Where and as whom to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The inventory name, for messages.
    pub name: String,
    pub address: String,
    pub port: u16,
    pub user: String,
    /// Private keys to offer, in order, after the ssh-agent's.
    pub identity_files: Vec<PathBuf>,
    pub known_hosts: PathBuf,
    /// A bastion to reach this host through (ProxyJump), over direct-tcpip.
    pub jump: Option<Box<Target>>,
}

/// Output beyond this many bytes per stream is dropped (the head is kept).
pub const OUTPUT_LIMIT: usize = 8 * 1024 * 1024;

/// What a finished command left behind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecOutput {
    /// `None` when the command was killed by a signal or the server sent no status.
    pub exit_code: Option<u32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl ExecOutput {
    pub fn success(&self) -> bool {
        self.exit_code == Some(0)
    }
}

/// Why a transport operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    #[error("cannot connect to {address}:{port}: {reason}")]
    Connect {
        address: String,
        port: u16,
        reason: String,
    },
    #[error("{what} timed out after {}", humantime(*after))]
    Timeout { what: String, after: Duration },
    #[error("host key for {host} is not in {known_hosts} (use --accept-new-host-keys to trust it on first use)")]
    UnknownHostKey { host: String, known_hosts: String },
    #[error("HOST KEY CHANGED for {host}: it does not match line {line} of {known_hosts}; refusing to connect (possible man-in-the-middle)")]
    ChangedHostKey {
        host: String,
        line: usize,
        known_hosts: String,
    },
    #[error("HOST KEY REVOKED for {host}: line {line} of {known_hosts} marks its key @revoked; refusing to connect")]
    RevokedHostKey {
        host: String,
        line: usize,
        known_hosts: String,
    },
    #[error("{known_hosts}:{line}: @cert-authority for {host}: herd does not support host certificates; list the host's own key in known_hosts")]
    HostCertificate {
        host: String,
        line: usize,
        known_hosts: String,
    },
    #[error("cannot read known hosts {known_hosts}: {reason}")]
    KnownHosts { known_hosts: String, reason: String },
    #[error("authentication failed for {user}@{host}: {reason}")]
    Auth {
        user: String,
        host: String,
        reason: String,
    },
    #[error("ssh error: {0}")]
    Protocol(String),
    #[error("upload to {dest} failed: {reason}")]
    Upload { dest: String, reason: String },
}

fn humantime(d: Duration) -> String {
    if d.as_millis().is_multiple_of(1000) {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// Opens connections.
pub trait Connector: Send + Sync + 'static {
    type Connection: Connection;

    fn connect(
        &self,
        target: &Target,
    ) -> impl Future<Output = Result<Self::Connection, TransportError>> + Send;
}

/// One authenticated connection to one host, reused for every step.
pub trait Connection: Send + Sync + 'static {
    /// A byte stream to an address as the host sees it.
    type Tunnel: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static;

    /// Runs `command`, a script for the host's `/bin/sh` (whatever the login
    /// shell), with stdin empty, waiting at most `timeout`.
    fn exec(
        &self,
        command: &str,
        timeout: Duration,
    ) -> impl Future<Output = Result<ExecOutput, TransportError>> + Send;

    /// Writes what `source` yields to `dest` with permission bits `mode`,
    /// atomically: a temporary file beside `dest` with an unpredictable
    /// name, created exclusively and private from the start, then renamed
    /// into place. `source` is read in bounded chunks as they are sent, and
    /// `sent` counts the bytes written to the host so far. On any failure,
    /// a timeout included, the temporary file is removed.
    fn upload(
        &self,
        source: &mut (dyn tokio::io::AsyncRead + Unpin + Send),
        dest: &str,
        mode: u32,
        timeout: Duration,
        sent: &AtomicU64,
    ) -> impl Future<Output = Result<(), TransportError>> + Send;

    /// Opens a TCP connection from the host to `address:port` (SSH direct-tcpip).
    fn tunnel(
        &self,
        address: &str,
        port: u16,
        timeout: Duration,
    ) -> impl Future<Output = Result<Self::Tunnel, TransportError>> + Send;

    /// Closes the connection politely.
    fn close(&self) -> impl Future<Output = ()> + Send;
}
