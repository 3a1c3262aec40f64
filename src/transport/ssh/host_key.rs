//! Checking a server's host key against known_hosts during the handshake:
//! a known key passes, an unknown key is refused (or learned with
//! `--accept-new-host-keys`), a changed or `@revoked` key is always refused,
//! and a host vouched for only by `@cert-authority` is refused by name.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use russh::client;
use russh::keys::{self, PublicKey};

use super::known_hosts::{self, Verdict};
use crate::transport::TransportError;

/// Checks the server's key against known_hosts during the handshake.
pub(super) struct HostKeyCheck {
    pub address: String,
    pub port: u16,
    pub known_hosts: PathBuf,
    pub accept_new: bool,
    pub problem: Arc<Mutex<Option<TransportError>>>,
}

impl HostKeyCheck {
    fn host_label(&self) -> String {
        if self.port == 22 {
            self.address.clone()
        } else {
            format!("[{}]:{}", self.address, self.port)
        }
    }

    fn verdict(&self, key: &PublicKey) -> Result<(), TransportError> {
        let host = self.host_label();
        let unreadable = |reason: String| TransportError::KnownHosts {
            known_hosts: self.known_hosts.clone(),
            reason,
        };
        match known_hosts::check(&self.known_hosts, &host, key).map_err(unreadable)? {
            Verdict::Known => Ok(()),
            Verdict::Unknown if self.accept_new => keys::known_hosts::learn_known_hosts_path(
                &self.address,
                self.port,
                key,
                &self.known_hosts,
            )
            .map_err(|e| unreadable(e.to_string())),
            Verdict::Unknown => Err(TransportError::UnknownHostKey {
                host,
                known_hosts: self.known_hosts.clone(),
            }),
            Verdict::Changed { line } => Err(TransportError::ChangedHostKey {
                host,
                line,
                known_hosts: self.known_hosts.clone(),
            }),
            Verdict::Revoked { line } => Err(TransportError::RevokedHostKey {
                host,
                line,
                known_hosts: self.known_hosts.clone(),
            }),
            Verdict::CertAuthority { line } => Err(TransportError::HostCertificate {
                host,
                line,
                known_hosts: self.known_hosts.clone(),
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
