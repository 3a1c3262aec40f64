//! Checking a server's host key against known_hosts during the handshake:
//! a known key passes, an unknown key is refused (or learned with
//! `--accept-new-host-keys`), a changed or `@revoked` key is always refused,
//! and a host vouched for only by `@cert-authority` is refused by name.
//! known_hosts text from the environment is checked by the same rules; an
//! unknown key accepted with `--accept-new-host-keys` is then trusted for
//! this run only, as there is no file to learn it into.

use std::sync::{Arc, Mutex};

use russh::client;
use russh::keys::{self, PublicKey};

use super::known_hosts::{self, Source, Verdict};
use crate::transport::TransportError;

/// Checks the server's key against known_hosts during the handshake.
pub(super) struct HostKeyCheck {
    pub address: String,
    pub port: u16,
    pub known_hosts: Source,
    pub accept_new: bool,
    pub problem: Arc<Mutex<Option<TransportError>>>,
}

impl HostKeyCheck {
    /// How known_hosts names the host: `[address]:port` unless the port is 22.
    pub(super) fn host_label(&self) -> String {
        if self.port == 22 {
            self.address.clone()
        } else {
            format!("[{}]:{}", self.address, self.port)
        }
    }

    fn verdict(&self, key: &PublicKey) -> Result<(), TransportError> {
        let host = self.host_label();
        let name = self.known_hosts.name();
        let unreadable = |reason: String| TransportError::KnownHosts {
            known_hosts: name.clone(),
            reason,
        };
        match known_hosts::check(&self.known_hosts, &host, key).map_err(unreadable)? {
            Verdict::Known => Ok(()),
            Verdict::Unknown if self.accept_new => match &self.known_hosts {
                Source::File(path) => {
                    keys::known_hosts::learn_known_hosts_path(&self.address, self.port, key, path)
                        .map_err(|e| unreadable(e.to_string()))
                }
                Source::Text(_) => Ok(()),
            },
            Verdict::Unknown => Err(TransportError::UnknownHostKey {
                host,
                known_hosts: match &self.known_hosts {
                    // A mistyped path reads as an empty file: say which it is.
                    Source::File(path) if !path.exists() => {
                        format!("{name}, a file that does not exist")
                    }
                    _ => name.clone(),
                },
            }),
            Verdict::Changed { line } => Err(TransportError::ChangedHostKey {
                host,
                line,
                known_hosts: name.clone(),
            }),
            Verdict::Revoked { line } => Err(TransportError::RevokedHostKey {
                host,
                line,
                known_hosts: name.clone(),
            }),
            Verdict::CertAuthority { line } => Err(TransportError::HostCertificate {
                host,
                line,
                known_hosts: name.clone(),
            }),
        }
    }
}

impl client::Handler for HostKeyCheck {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        server_key: &keys::PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let keys::PublicKeyOrCertificate::PublicKey { key, .. } = server_key else {
            self.record(TransportError::Protocol(
                "host certificates are not supported".into(),
            ));
            return Ok(false);
        };
        match self.verdict(key) {
            Ok(()) => Ok(true),
            Err(problem) => {
                self.record(problem);
                Ok(false)
            }
        }
    }
}

impl HostKeyCheck {
    fn record(&self, problem: TransportError) {
        if let Ok(mut slot) = self.problem.lock() {
            *slot = Some(problem);
        }
    }
}
