//! Checking a server's host key against known_hosts during the handshake:
//! a known key passes, an unknown key is refused (or learned with
//! `--accept-new-host-keys`), a changed key is always refused.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use russh::client;
use russh::keys::{self, PublicKey};

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
        match keys::check_known_hosts_path(&self.address, self.port, key, &self.known_hosts) {
            Ok(true) => Ok(()),
            Ok(false) if self.accept_new => keys::known_hosts::learn_known_hosts_path(
                &self.address,
                self.port,
                key,
                &self.known_hosts,
            )
            .map_err(|e| TransportError::KnownHosts {
                known_hosts: self.known_hosts.clone(),
                reason: e.to_string(),
            }),
            Ok(false) => Err(TransportError::UnknownHostKey {
                host: self.host_label(),
                known_hosts: self.known_hosts.clone(),
            }),
            Err(keys::Error::KeyChanged { line }) => Err(TransportError::ChangedHostKey {
                host: self.host_label(),
                line,
                known_hosts: self.known_hosts.clone(),
            }),
            Err(keys::Error::IO(e))
                if e.kind() == std::io::ErrorKind::NotFound && !self.accept_new =>
            {
                Err(TransportError::UnknownHostKey {
                    host: self.host_label(),
                    known_hosts: self.known_hosts.clone(),
                })
            }
            Err(e) => Err(TransportError::KnownHosts {
                known_hosts: self.known_hosts.clone(),
                reason: e.to_string(),
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
