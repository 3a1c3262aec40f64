//! The SSH transport, on russh: host keys checked against known_hosts,
//! authentication with a key from the environment, ssh-agent keys and key files, one connection per host whose
//! commands run in one long-lived shell (`shell`), SFTP uploads.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::client::{self, Handle};
use russh::ChannelMsg;
use russh_sftp::client::SftpSession;
use russh_sftp::protocol::{FileAttributes, OpenFlags};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

mod auth;
pub mod env_credentials;
mod host_key;
mod known_hosts;
mod quick_ack;
mod shell;

use super::{Connection, Connector, ExecOutput, Target, TransportError, OUTPUT_LIMIT};
use auth::authenticate;
use host_key::HostKeyCheck;
use shell::{Shell, ShellError};

/// How the SSH transport behaves; every wait is bounded by one of these.
#[derive(Debug, Clone)]
pub struct SshSettings {
    pub connect_timeout: Duration,
    pub accept_new_host_keys: bool,
    pub use_agent: bool,
    /// `HERD_SSH_KEY` and `HERD_KNOWN_HOSTS`, for every host and bastion.
    pub env: env_credentials::EnvCredentials,
}

pub struct SshConnector {
    config: Arc<client::Config>,
    settings: SshSettings,
    bastions: Mutex<std::collections::HashMap<String, BastionSlot>>,
}

impl SshConnector {
    pub fn new(settings: SshSettings) -> Self {
        SshConnector {
            config: Arc::new(client_config(russh::Preferred::DEFAULT.key)),
            settings,
            bastions: Mutex::default(),
        }
    }
}

/// The client's settings, asking for host keys of the types in `keys`
/// first.
fn client_config(keys: std::borrow::Cow<'static, [russh::keys::Algorithm]>) -> client::Config {
    client::Config {
        // A dead peer is noticed even while no command runs.
        keepalive_interval: Some(Duration::from_secs(15)),
        keepalive_max: 3,
        nodelay: true,
        preferred: russh::Preferred {
            cipher: std::borrow::Cow::Borrowed(cipher_order(hardware_aes())),
            key: keys,
            ..russh::Preferred::DEFAULT
        },
        ..Default::default()
    }
}

/// The host key types to ask a server for: those known_hosts records for
/// it first, in russh's order of preference (as OpenSSH does: a stale RSA
/// line before the right Ed25519 one does not make herd ask for RSA; an RSA
/// key is asked for with SHA-2 signatures first), then the other types;
/// `None` when it records none.
fn host_key_order(recorded: &[russh::keys::Algorithm]) -> Option<Vec<russh::keys::Algorithm>> {
    use russh::keys::Algorithm;
    if recorded.is_empty() {
        return None;
    }
    let is_recorded = |algorithm: &Algorithm| {
        recorded.iter().any(|r| match (r, algorithm) {
            (Algorithm::Rsa { .. }, Algorithm::Rsa { .. }) => true,
            (r, a) => r == a,
        })
    };
    let all = russh::Preferred::DEFAULT.key;
    let (mut order, rest): (Vec<Algorithm>, Vec<Algorithm>) =
        all.iter().cloned().partition(|a| is_recorded(a));
    order.extend(rest);
    Some(order)
}

/// The ciphers offered, best first. With AES instructions on this machine,
/// AES-GCM costs both ends a fraction of ChaCha20-Poly1305 per byte (the
/// host's sshd too, whose Poly1305 is plain C): it goes first, which is
/// what makes an upload's throughput. Without them, russh's order, where
/// ChaCha20-Poly1305 leads.
fn cipher_order(hardware_aes: bool) -> &'static [russh::cipher::Name] {
    use russh::cipher::{AES_128_CTR, AES_192_CTR, AES_256_CTR, AES_256_GCM, CHACHA20_POLY1305};
    if hardware_aes {
        &[
            AES_256_GCM,
            CHACHA20_POLY1305,
            AES_256_CTR,
            AES_192_CTR,
            AES_128_CTR,
        ]
    } else {
        &[
            CHACHA20_POLY1305,
            AES_256_GCM,
            AES_256_CTR,
            AES_192_CTR,
            AES_128_CTR,
        ]
    }
}

/// Whether this CPU has AES and carry-less multiply instructions (what
/// AES-GCM runs fast and in constant time on).
fn hardware_aes() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("aes")
            && std::arch::is_x86_feature_detected!("pclmulqdq")
    }
    #[cfg(target_arch = "aarch64")]
    {
        std::arch::is_aarch64_feature_detected!("aes")
            && std::arch::is_aarch64_feature_detected!("pmull")
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        false
    }
}

type Bastion = Arc<Handle<HostKeyCheck>>;

/// One connection per bastion, opened by the first host that needs it.
type BastionSlot = Arc<tokio::sync::OnceCell<Result<Bastion, TransportError>>>;

impl SshConnector {
    /// Connects, checks the host key and logs in; through `via` (a bastion's
    /// direct-tcpip channel) when given, else over TCP.
    async fn open(
        &self,
        target: &Target,
        via: Option<&Bastion>,
    ) -> Result<Handle<HostKeyCheck>, TransportError> {
        let limit = self.settings.connect_timeout;
        let timed_out = || TransportError::Timeout {
            what: format!("connecting to {}:{}", target.address, target.port),
            after: limit,
        };
        let connect_error = |reason: String| TransportError::Connect {
            address: target.address.clone(),
            port: target.port,
            reason,
        };
        let mut handle = match via {
            None => {
                let stream = tokio::time::timeout(
                    limit,
                    tokio::net::TcpStream::connect((target.address.as_str(), target.port)),
                )
                .await
                .map_err(|_| timed_out())?
                .map_err(|e| connect_error(e.to_string()))?;
                let _ = stream.set_nodelay(true);
                self.handshake(target, quick_ack::QuickAck::new(stream))
                    .await?
            }
            Some(bastion) => {
                let open = bastion.channel_open_direct_tcpip(
                    target.address.as_str(),
                    u32::from(target.port),
                    "127.0.0.1",
                    0,
                );
                let channel = tokio::time::timeout(limit, open)
                    .await
                    .map_err(|_| timed_out())?
                    .map_err(|e| {
                        connect_error(format!("the bastion could not connect: {}", describe(&e)))
                    })?;
                self.handshake(target, channel.into_stream()).await?
            }
        };
        let auth = authenticate(
            &mut handle,
            target,
            self.settings.env.key.as_ref(),
            self.settings.use_agent,
        );
        match tokio::time::timeout(limit, auth).await {
            Err(_) => Err(TransportError::Timeout {
                what: format!("authenticating as {} on {}", target.user, target.name),
                after: limit,
            }),
            Ok(result) => result.map(|()| handle),
        }
    }

    /// The SSH handshake on `stream`, host key checked.
    async fn handshake<S>(
        &self,
        target: &Target,
        stream: S,
    ) -> Result<Handle<HostKeyCheck>, TransportError>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let limit = self.settings.connect_timeout;
        let problem = Arc::new(Mutex::new(None));
        let handler = HostKeyCheck {
            address: target.address.clone(),
            port: target.port,
            known_hosts: match &self.settings.env.known_hosts {
                Some(text) => known_hosts::Source::Text(text.clone()),
                None => known_hosts::Source::File(target.known_hosts.clone()),
            },
            accept_new: self.settings.accept_new_host_keys,
            problem: problem.clone(),
        };
        // Ask for the key types known_hosts records for this host first.
        let recorded =
            known_hosts::recorded_algorithms(&handler.known_hosts, &handler.host_label());
        let config = match host_key_order(&recorded) {
            Some(order) => Arc::new(client_config(order.into())),
            None => self.config.clone(),
        };
        match tokio::time::timeout(limit, client::connect_stream(config, stream, handler)).await {
            Err(_) => Err(TransportError::Timeout {
                what: format!("the SSH handshake with {}:{}", target.address, target.port),
                after: limit,
            }),
            Ok(Ok(handle)) => Ok(handle),
            Ok(Err(error)) => {
                let recorded = problem.lock().ok().and_then(|mut p| p.take());
                Err(recorded.unwrap_or_else(|| TransportError::Connect {
                    address: target.address.clone(),
                    port: target.port,
                    reason: describe(&error),
                }))
            }
        }
    }

    /// The shared connection to a bastion, opened once for every host behind it.
    async fn bastion(&self, bastion: &Target) -> Result<Bastion, TransportError> {
        let key = format!("{}@{}:{}", bastion.user, bastion.address, bastion.port);
        let slot: BastionSlot = match self.bastions.lock() {
            Ok(mut map) => map.entry(key).or_default().clone(),
            Err(_) => Arc::default(),
        };
        slot.get_or_init(|| async { self.open(bastion, None).await.map(Arc::new) })
            .await
            .clone()
    }
}

impl Connector for SshConnector {
    type Connection = SshConnection;

    async fn connect(&self, target: &Target) -> Result<SshConnection, TransportError> {
        let bastion = match &target.jump {
            None => None,
            Some(jump) => {
                Some(
                    self.bastion(jump)
                        .await
                        .map_err(|error| TransportError::Connect {
                            address: target.address.clone(),
                            port: target.port,
                            reason: format!(
                                "through bastion {}:{}: {error}",
                                jump.address, jump.port
                            ),
                        })?,
                )
            }
        };
        let handle = self.open(target, bastion.as_ref()).await?;
        Ok(SshConnection {
            handle: Arc::new(handle),
            shell: tokio::sync::Mutex::new(ShellSlot::NotStarted),
            _bastion: bastion,
        })
    }
}

pub(super) fn describe(error: &russh::Error) -> String {
    match error {
        russh::Error::Disconnect => {
            "the server closed the connection during the handshake".to_string()
        }
        russh::Error::IO(e) => e.to_string(),
        other => other.to_string(),
    }
}

/// An authenticated connection; cheap to share between tasks.
pub struct SshConnection {
    handle: Arc<Handle<HostKeyCheck>>,
    /// The shell that runs this host's commands; a command that finds it
    /// busy gets a session of its own.
    shell: tokio::sync::Mutex<ShellSlot>,
    /// Keeps the bastion's connection open while this host needs it.
    _bastion: Option<Bastion>,
}

enum ShellSlot {
    NotStarted,
    Running(Shell),
    /// It could not be started or could not be written to: commands get
    /// sessions of their own. (One that ended or timed out is started again.)
    Unusable,
}

fn command_timed_out(after: Duration) -> TransportError {
    TransportError::Timeout {
        what: "the command".to_string(),
        after,
    }
}

impl SshConnection {
    /// Runs `script` with /bin/sh: in the connection's shell when it is
    /// free, else in a session of its own.
    async fn run(&self, script: &str, timeout: Duration) -> Result<ExecOutput, TransportError> {
        if let Ok(mut slot) = self.shell.try_lock() {
            if let ShellSlot::NotStarted = *slot {
                *slot = match Shell::start(&self.handle, timeout).await {
                    Ok(shell) => ShellSlot::Running(shell),
                    Err(_) => ShellSlot::Unusable,
                };
            }
            if let ShellSlot::Running(shell) = &mut *slot {
                match shell.run(script, timeout).await {
                    Ok(output) => return Ok(output),
                    Err(ShellError::NotSent(_)) => *slot = ShellSlot::Unusable,
                    Err(ShellError::TimedOut) => {
                        *slot = ShellSlot::NotStarted;
                        return Err(command_timed_out(timeout));
                    }
                    Err(ShellError::Lost(reason)) => {
                        *slot = ShellSlot::NotStarted;
                        return Ok(ExecOutput {
                            exit_code: None,
                            stdout: Vec::new(),
                            stderr: format!("{reason}\n").into_bytes(),
                        });
                    }
                }
            }
        }
        self.run_in_session(script, timeout).await
    }

    /// Runs `script` under `/bin/sh` in a session of its own; past
    /// `timeout`, asks sshd to send the command TERM (rather than leave it
    /// running) and gives up on it. The script goes on the session's stdin,
    /// read whole before it runs: on a command line (`sh -c SCRIPT`) every
    /// user of the host would see it, secrets and all, in `ps`.
    async fn run_in_session(
        &self,
        script: &str,
        timeout: Duration,
    ) -> Result<ExecOutput, TransportError> {
        let protocol = |e: russh::Error| TransportError::Protocol(describe(&e));
        let timed_out = || command_timed_out(timeout);
        let deadline = tokio::time::Instant::now() + timeout;
        let start = async {
            let channel = self.handle.channel_open_session().await.map_err(protocol)?;
            channel
                .exec(true, "exec /bin/sh -c 'eval \"$(cat)\"'")
                .await
                .map_err(protocol)?;
            channel.data(script.as_bytes()).await.map_err(protocol)?;
            // Like a command in the shell, it reads nothing else from herd.
            channel.eof().await.map_err(protocol)?;
            Ok::<_, TransportError>(channel)
        };
        let mut channel = tokio::time::timeout_at(deadline, start)
            .await
            .map_err(|_| timed_out())??;
        let mut output = ExecOutput::default();
        loop {
            let Ok(message) = tokio::time::timeout_at(deadline, channel.wait()).await else {
                let _ = channel.signal(russh::Sig::TERM).await;
                let _ = channel.close().await;
                return Err(timed_out());
            };
            let Some(message) = message else {
                break;
            };
            match message {
                ChannelMsg::Data { data } => append(&mut output.stdout, &data),
                ChannelMsg::ExtendedData { data, ext: 1 } => append(&mut output.stderr, &data),
                ChannelMsg::ExitStatus { exit_status } => output.exit_code = Some(exit_status),
                ChannelMsg::ExitSignal { signal_name, .. } => {
                    append(
                        &mut output.stderr,
                        format!("killed by signal {signal_name:?}\n").as_bytes(),
                    );
                }
                _ => {}
            }
        }
        Ok(output)
    }

    /// Creates `path` (which must not exist: a symlink there is not
    /// followed) readable by its owner alone, writes what `source` yields,
    /// a chunk at a time, counting it in `sent`, and sets `mode` on the open
    /// file. `created` says whether the file was made, so a failure cleans
    /// up only what this call created.
    async fn sftp_write(
        &self,
        path: &str,
        source: &mut (dyn AsyncRead + Unpin + Send),
        mode: u32,
        created: &AtomicBool,
        sent: &AtomicU64,
    ) -> Result<(), String> {
        let channel = self
            .handle
            .channel_open_session()
            .await
            .map_err(|e| describe(&e))?;
        channel
            .request_subsystem(true, "sftp")
            .await
            .map_err(|e| describe(&e))?;
        let sftp = SftpSession::new(channel.into_stream())
            .await
            .map_err(|e| e.to_string())?;
        let flags = OpenFlags::CREATE | OpenFlags::EXCLUDE | OpenFlags::WRITE;
        let private = FileAttributes {
            permissions: Some(0o600),
            ..FileAttributes::default()
        };
        let written = async {
            let mut file = sftp
                .open_with_flags_and_attributes(path, flags, private)
                .await
                .map_err(|e| e.to_string())?;
            created.store(true, Ordering::SeqCst);
            let mut chunk = vec![0u8; UPLOAD_CHUNK];
            loop {
                let read = source.read(&mut chunk).await.map_err(|e| e.to_string())?;
                if read == 0 {
                    break;
                }
                file.write_all(&chunk[..read])
                    .await
                    .map_err(|e| e.to_string())?;
                sent.fetch_add(read as u64, Ordering::Relaxed);
            }
            let final_mode = FileAttributes {
                permissions: Some(mode),
                ..FileAttributes::default()
            };
            file.set_metadata(final_mode)
                .await
                .map_err(|e| e.to_string())?;
            file.shutdown().await.map_err(|e| e.to_string())
        }
        .await;
        let _ = sftp.close().await;
        written
    }

    /// Removes an upload's temporary file after a failure, in a session of
    /// its own (the connection's shell may be in the middle of something).
    async fn remove_temporary(&self, path: &str, timeout: Duration) {
        let script = format!("rm -f -- {}", crate::shell::quote(path));
        let _ = self.run_in_session(&script, timeout).await;
    }
}

/// The least time given to removing a failed upload's temporary file.
const CLEAN_UP_TIME: Duration = Duration::from_secs(15);

/// How much of an upload is read from its source and written at a time:
/// each host's upload holds this much of the artifact, whatever its size.
const UPLOAD_CHUNK: usize = 64 * 1024;

fn append(buffer: &mut Vec<u8>, data: &[u8]) {
    let room = OUTPUT_LIMIT.saturating_sub(buffer.len());
    buffer.extend_from_slice(&data[..data.len().min(room)]);
}

impl Connection for SshConnection {
    type Tunnel = russh::ChannelStream<client::Msg>;

    async fn tunnel(
        &self,
        address: &str,
        port: u16,
        timeout: Duration,
    ) -> Result<Self::Tunnel, TransportError> {
        let open = self
            .handle
            .channel_open_direct_tcpip(address, u32::from(port), "127.0.0.1", 0);
        match tokio::time::timeout(timeout, open).await {
            Err(_) => Err(TransportError::Timeout {
                what: format!("opening a tunnel to {address}:{port}"),
                after: timeout,
            }),
            Ok(Err(error)) => Err(TransportError::Connect {
                address: address.to_string(),
                port,
                reason: format!("the host could not connect: {}", describe(&error)),
            }),
            Ok(Ok(channel)) => Ok(channel.into_stream()),
        }
    }

    async fn exec(&self, command: &str, timeout: Duration) -> Result<ExecOutput, TransportError> {
        self.run(command, timeout).await
    }

    async fn upload(
        &self,
        source: &mut (dyn AsyncRead + Unpin + Send),
        dest: &str,
        mode: u32,
        timeout: Duration,
        sent: &AtomicU64,
    ) -> Result<(), TransportError> {
        let temporary = super::temp_name::beside(dest);
        let created = AtomicBool::new(false);
        let failed = |reason: String| TransportError::Upload {
            dest: dest.to_string(),
            reason,
        };
        let steps = async {
            self.sftp_write(&temporary, source, mode, &created, sent)
                .await
                .map_err(failed)?;
            let finish = super::temp_name::move_into_place(&temporary, dest);
            let output = self.run(&finish, timeout).await?;
            if output.success() {
                Ok(())
            } else {
                Err(failed(
                    String::from_utf8_lossy(&output.stderr).trim().to_string(),
                ))
            }
        };
        let result = tokio::time::timeout(timeout, steps)
            .await
            .unwrap_or_else(|_| {
                Err(TransportError::Timeout {
                    what: format!("uploading {dest}"),
                    after: timeout,
                })
            });
        if result.is_err() && created.load(Ordering::SeqCst) {
            // After a timeout the step's own time is spent: the clean-up
            // gets time of its own, behind what the upload left queued on
            // the connection.
            self.remove_temporary(&temporary, timeout.max(CLEAN_UP_TIME))
                .await;
        }
        result
    }

    async fn close(&self) {
        let _ = self
            .handle
            .disconnect(russh::Disconnect::ByApplication, "", "en")
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_host_key_types_are_asked_for_first_rsa_with_sha2() {
        use russh::keys::{Algorithm, HashAlg};
        assert_eq!(host_key_order(&[]), None);
        let order = host_key_order(&[Algorithm::Rsa { hash: None }]).unwrap();
        assert_eq!(
            order[..4],
            [
                Algorithm::Rsa {
                    hash: Some(HashAlg::Sha512)
                },
                Algorithm::Rsa {
                    hash: Some(HashAlg::Sha256)
                },
                Algorithm::Rsa { hash: None },
                Algorithm::Ed25519,
            ]
        );
        // Every type russh knows is still offered, once.
        assert_eq!(order.len(), russh::Preferred::DEFAULT.key.len());
        // Several recorded: russh's preference, not the file's order.
        let both = host_key_order(&[Algorithm::Rsa { hash: None }, Algorithm::Ed25519]).unwrap();
        assert_eq!(both[0], Algorithm::Ed25519);
        assert!(matches!(both[1], Algorithm::Rsa { .. }), "{both:?}");
    }

    #[test]
    fn aes_gcm_leads_only_with_aes_instructions_and_the_same_ciphers_are_offered() {
        let with = cipher_order(true);
        let without = cipher_order(false);
        assert_eq!(with[0], russh::cipher::AES_256_GCM);
        assert_eq!(without[0], russh::cipher::CHACHA20_POLY1305);
        let mut a: Vec<_> = with.iter().map(|n| n.as_ref().to_string()).collect();
        let mut b: Vec<_> = without.iter().map(|n| n.as_ref().to_string()).collect();
        a.sort();
        b.sort();
        assert_eq!(a, b);
    }
}
