//! Turns a host's variables into where and how to connect (Ansible's names).

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::inventory::Vars;
use crate::transport::Target;

/// A connection variable with the wrong type or value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetError {
    pub var: &'static str,
    pub message: String,
}

/// Settings from the command line that apply to every host.
#[derive(Debug, Clone, Default)]
pub struct TargetDefaults {
    /// `--known-hosts`, which wins over the inventory's `herd_known_hosts`.
    pub known_hosts: Option<PathBuf>,
    /// The inventory's directory: relative key and known_hosts paths start there.
    pub base_dir: PathBuf,
}

pub fn target_for(
    name: &str,
    vars: &Vars,
    defaults: &TargetDefaults,
) -> Result<Target, TargetError> {
    let address = text_var(vars, "ansible_host")?.unwrap_or_else(|| name.to_string());
    let port = match vars.get("ansible_port") {
        None | Some(Value::Null) => 22,
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p > 0)
            .ok_or_else(|| {
                bad(
                    "ansible_port",
                    format!("`ansible_port: {n}` is not a TCP port (1-65535)"),
                )
            })?,
        Some(Value::String(s)) => s.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| {
            bad(
                "ansible_port",
                format!("`ansible_port: {s}` is not a TCP port (1-65535)"),
            )
        })?,
        Some(other) => {
            return Err(bad(
                "ansible_port",
                format!("`ansible_port: {other}` is not a TCP port (1-65535)"),
            ))
        }
    };
    let user = match text_var(vars, "ansible_user")? {
        Some(user) => user,
        None => std::env::var("USER").unwrap_or_else(|_| "root".to_string()),
    };
    let identity_files = match text_var(vars, "ansible_ssh_private_key_file")? {
        Some(path) => vec![resolve(&path, &defaults.base_dir)],
        None => default_identities(),
    };
    let known_hosts = match (&defaults.known_hosts, text_var(vars, "herd_known_hosts")?) {
        (Some(path), _) => path.clone(),
        (None, Some(path)) => resolve(&path, &defaults.base_dir),
        (None, None) => home().join(".ssh/known_hosts"),
    };
    Ok(Target {
        name: name.to_string(),
        address,
        port,
        user,
        identity_files,
        known_hosts,
    })
}

fn bad(var: &'static str, message: String) -> TargetError {
    TargetError { var, message }
}

fn text_var(vars: &Vars, name: &'static str) -> Result<Option<String>, TargetError> {
    match vars.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Err(bad(name, format!("`{name}` is empty"))),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(other) => Err(bad(name, format!("`{name}` must be a string, not {other}"))),
    }
}

fn home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/"))
}

/// Expands `~/` and makes a relative path relative to `base`.
pub fn resolve(path: &str, base: &Path) -> PathBuf {
    if let Some(rest) = path.strip_prefix("~/") {
        return home().join(rest);
    }
    let path = Path::new(path);
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    }
}

fn default_identities() -> Vec<PathBuf> {
    ["id_ed25519", "id_ecdsa", "id_rsa"]
        .iter()
        .map(|name| home().join(".ssh").join(name))
        .filter(|path| path.exists())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vars(value: Value) -> Vars {
        value.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn ansible_connection_variables() {
        let defaults = TargetDefaults {
            known_hosts: None,
            base_dir: PathBuf::from("/inv"),
        };
        let v = vars(json!({
            "ansible_host": "10.0.0.5", "ansible_port": 2222, "ansible_user": "deploy",
            "ansible_ssh_private_key_file": "keys/id", "herd_known_hosts": "kh"
        }));
        let target = target_for("web1", &v, &defaults).unwrap();
        assert_eq!(target.address, "10.0.0.5");
        assert_eq!(target.port, 2222);
        assert_eq!(target.user, "deploy");
        assert_eq!(target.identity_files, vec![PathBuf::from("/inv/keys/id")]);
        assert_eq!(target.known_hosts, PathBuf::from("/inv/kh"));
        let plain = target_for("web1", &Vars::new(), &defaults).unwrap();
        assert_eq!((plain.address.as_str(), plain.port), ("web1", 22));
    }

    #[test]
    fn a_bad_port_is_named() {
        let error = target_for(
            "w",
            &vars(json!({"ansible_port": "ssh"})),
            &TargetDefaults::default(),
        )
        .unwrap_err();
        assert_eq!(error.var, "ansible_port");
        assert!(error.message.contains("not a TCP port"));
        assert!(target_for(
            "w",
            &vars(json!({"ansible_port": 70000})),
            &TargetDefaults::default()
        )
        .is_err());
    }
}
