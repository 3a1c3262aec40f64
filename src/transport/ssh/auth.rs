//! Logging in: the key from `HERD_SSH_KEY` first (a CI job's credential,
//! offered to every host), then the ssh-agent's keys, then each identity
//! file; RSA keys sign with SHA-2 when the server supports it.

use std::path::Path;
use std::sync::Arc;

use russh::client::{AuthResult, Handle};
use russh::keys::agent::client::AgentClient;
use russh::keys::{self, PrivateKeyWithHashAlg, PublicKey};

use super::describe;
use super::env_credentials::KEY_VAR;
use super::host_key::HostKeyCheck;
use crate::transport::{Target, TransportError};

/// Tries the environment's key, the ssh-agent's keys, then each identity
/// file, until one is accepted.
pub(super) async fn authenticate(
    handle: &mut Handle<HostKeyCheck>,
    target: &Target,
    env_key: Option<&Arc<keys::PrivateKey>>,
    use_agent: bool,
) -> Result<(), TransportError> {
    let fail = |reason: String| TransportError::Auth {
        user: target.user.clone(),
        host: target.name.clone(),
        reason,
    };
    let mut tried = Vec::new();
    if let Some(key) = env_key {
        let hash = rsa_hash(handle, key.public_key()).await;
        let key = PrivateKeyWithHashAlg::new(key.clone(), hash);
        match handle.authenticate_publickey(&target.user, key).await {
            Ok(AuthResult::Success) => return Ok(()),
            Ok(AuthResult::Failure { .. }) => {
                tried.push(format!("the key in {KEY_VAR} was refused"))
            }
            Err(e) => return Err(fail(describe(&e))),
        }
    }
    if use_agent && std::env::var_os("SSH_AUTH_SOCK").is_some() {
        if let Ok(mut agent) = AgentClient::connect_env().await {
            let identities = agent.request_identities().await.unwrap_or_default();
            for identity in identities {
                let key = identity.public_key().into_owned();
                let hash = rsa_hash(handle, &key).await;
                match handle
                    .authenticate_publickey_with(&target.user, key, hash, &mut agent)
                    .await
                {
                    Ok(AuthResult::Success) => return Ok(()),
                    Ok(AuthResult::Failure { .. }) => tried.push("an ssh-agent key".to_string()),
                    Err(e) => tried.push(format!("an ssh-agent key ({e})")),
                }
            }
        }
    }
    for path in &target.identity_files {
        let key = match load_key(path) {
            Ok(key) => key,
            Err(reason) => {
                if target.identity_files.len() == 1 && env_key.is_none() {
                    return Err(fail(reason));
                }
                tried.push(reason);
                continue;
            }
        };
        let hash = rsa_hash(handle, key.public_key()).await;
        let key = PrivateKeyWithHashAlg::new(Arc::new(key), hash);
        match handle.authenticate_publickey(&target.user, key).await {
            Ok(AuthResult::Success) => return Ok(()),
            Ok(AuthResult::Failure { .. }) => tried.push(format!("{} was refused", path.display())),
            Err(e) => return Err(fail(describe(&e))),
        }
    }
    if tried.is_empty() {
        return Err(fail(
            format!("no key to offer: set ansible_ssh_private_key_file or {KEY_VAR}, or load a key into ssh-agent"),
        ));
    }
    Err(fail(tried.join("; ")))
}

/// RSA keys sign with SHA-2 when the server says it can (rsa-sha2-256/512).
async fn rsa_hash(handle: &Handle<HostKeyCheck>, key: &PublicKey) -> Option<keys::HashAlg> {
    if !key.algorithm().is_rsa() {
        return None;
    }
    match handle.best_supported_rsa_hash().await {
        Ok(Some(hash)) => hash,
        _ => Some(keys::HashAlg::Sha256),
    }
}

fn load_key(path: &Path) -> Result<keys::PrivateKey, String> {
    keys::load_secret_key(path, None).map_err(|e| match e {
        keys::Error::KeyIsEncrypted => {
            format!(
                "{} is encrypted: add it to ssh-agent (ssh-add) instead",
                path.display()
            )
        }
        keys::Error::IO(io) => format!("cannot read key {}: {io}", path.display()),
        other => format!("cannot use key {}: {other}", path.display()),
    })
}
