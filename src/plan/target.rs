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
    /// The OpenSSH client config (`-F`, or `~/.ssh/config`): its path and text.
    pub ssh_config: Option<(PathBuf, String)>,
}

/// What `~/.ssh/config` says about one host name (`Host` patterns matched).
fn ssh_config_for(
    defaults: &TargetDefaults,
    host: &str,
) -> Result<russh_config::HostConfig, TargetError> {
    match &defaults.ssh_config {
        None => Ok(russh_config::HostConfig::default()),
        Some((path, text)) => russh_config::parse(text, host)
            .map(|c| c.host_config)
            .or_else(|e| match e {
                russh_config::Error::HostNotFound => Ok(russh_config::HostConfig::default()),
                e => Err(bad(
                    "ssh_config",
                    format!("cannot read {}: {e}", path.display()),
                )),
            }),
    }
}

/// Where and how to reach a host: inventory variables first, then what
/// `~/.ssh/config` says about its `ansible_host` (or inventory name), as
/// Ansible does when it calls ssh.
pub fn target_for(
    name: &str,
    vars: &Vars,
    defaults: &TargetDefaults,
) -> Result<Target, TargetError> {
    let alias = text_var(vars, "ansible_host")?.unwrap_or_else(|| name.to_string());
    let config = ssh_config_for(defaults, &alias)?;
    let address = config.hostname.clone().unwrap_or_else(|| alias.clone());
    let port = match vars.get("ansible_port") {
        None | Some(Value::Null) => config.port.unwrap_or(22),
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
        None => config.user.clone().unwrap_or_else(local_user),
    };
    let identity_files = match text_var(vars, "ansible_ssh_private_key_file")? {
        Some(path) => vec![resolve(&path, &defaults.base_dir)],
        None => config_identities(&config).unwrap_or_else(default_identities),
    };
    if let Some(other) = vars
        .get("herd_known_hosts")
        .filter(|v| !matches!(v, Value::String(_) | Value::Null))
    {
        return Err(bad(
            "herd_known_hosts",
            format!("`herd_known_hosts` must be a path written as a string, not {other}"),
        ));
    }
    let known_hosts = match (&defaults.known_hosts, text_var(vars, "herd_known_hosts")?) {
        (Some(path), _) => path.clone(),
        (None, Some(path)) => resolve(&path, &defaults.base_dir),
        (None, None) => config
            .user_known_hosts_file
            .clone()
            .unwrap_or_else(|| home().join(".ssh/known_hosts")),
    };
    let jump = match proxy_jump(vars)?.or(config.proxy_jump.clone()) {
        Some(spec) if spec != "none" => Some(Box::new(bastion(
            &spec,
            name,
            &identity_files,
            &known_hosts,
            defaults,
        )?)),
        _ => None,
    };
    Ok(Target {
        name: name.to_string(),
        address,
        port,
        user,
        identity_files,
        known_hosts,
        jump,
    })
}

fn local_user() -> String {
    std::env::var("USER").unwrap_or_else(|_| "root".to_string())
}

fn config_identities(config: &russh_config::HostConfig) -> Option<Vec<PathBuf>> {
    let files = config.identity_file.as_ref()?;
    let files: Vec<PathBuf> = files
        .iter()
        .map(|p| resolve(&p.to_string_lossy(), &home()))
        .collect();
    (!files.is_empty()).then_some(files)
}

/// `-o ProxyJump=X` or `-J X` in Ansible's `ansible_ssh_common_args`.
fn proxy_jump(vars: &Vars) -> Result<Option<String>, TargetError> {
    let Some(args) = text_var(vars, "ansible_ssh_common_args")? else {
        return Ok(None);
    };
    let words: Vec<&str> = args.split_whitespace().collect();
    Ok(words.iter().enumerate().find_map(|(i, word)| {
        let word = word.trim_matches(|c| c == '\'' || c == '"');
        if let Some(spec) = word.strip_prefix("ProxyJump=") {
            return Some(spec.to_string());
        }
        match word {
            "-J" => words
                .get(i + 1)
                .map(|s| s.trim_matches(|c| c == '\'' || c == '"').to_string()),
            _ => None,
        }
    }))
}

/// The bastion of a ProxyJump spec `[user@]host[:port]`, itself looked up in
/// `~/.ssh/config`. One hop: herd reaches the bastion directly.
fn bastion(
    spec: &str,
    behind: &str,
    identities: &[PathBuf],
    known_hosts: &std::path::Path,
    defaults: &TargetDefaults,
) -> Result<Target, TargetError> {
    if spec.contains(',') {
        return Err(bad(
            "ansible_ssh_common_args",
            format!("ProxyJump `{spec}` has several hops; herd goes through one bastion"),
        ));
    }
    let (user, rest) = match spec.rsplit_once('@') {
        Some((user, rest)) => (Some(user.to_string()), rest),
        None => (None, spec),
    };
    let (alias, port) = match rest.rsplit_once(':') {
        Some((host, port)) => {
            let port = port.parse::<u16>().map_err(|_| {
                bad(
                    "ansible_ssh_common_args",
                    format!("ProxyJump `{spec}`: bad port `{port}`"),
                )
            })?;
            (host.to_string(), Some(port))
        }
        None => (rest.to_string(), None),
    };
    let config = ssh_config_for(defaults, &alias)?;
    Ok(Target {
        name: format!("{alias} (bastion for {behind})"),
        address: config.hostname.clone().unwrap_or_else(|| alias.clone()),
        port: port.or(config.port).unwrap_or(22),
        user: user.or(config.user.clone()).unwrap_or_else(local_user),
        identity_files: config_identities(&config).unwrap_or_else(|| identities.to_vec()),
        known_hosts: known_hosts.to_path_buf(),
        jump: None,
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
            ssh_config: None,
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
    fn ssh_config_fills_in_under_the_inventory() {
        let config = "Host web*\n  HostName 10.1.1.9\n  User deploy\n  Port 2200\n  ProxyJump ops@bastion:2201\n\nHost bastion\n  HostName 10.0.0.1\n";
        let defaults = TargetDefaults {
            known_hosts: Some(PathBuf::from("/kh")),
            base_dir: PathBuf::from("/inv"),
            ssh_config: Some((PathBuf::from("/cfg"), config.to_string())),
        };
        let target = target_for("web1", &Vars::new(), &defaults).unwrap();
        assert_eq!(
            (target.address.as_str(), target.port, target.user.as_str()),
            ("10.1.1.9", 2200, "deploy")
        );
        let jump = target.jump.expect("a bastion");
        assert_eq!(
            (jump.address.as_str(), jump.port, jump.user.as_str()),
            ("10.0.0.1", 2201, "ops")
        );
        // Inventory variables win over the config.
        let v = vars(
            json!({"ansible_port": 22, "ansible_user": "app", "ansible_ssh_common_args": "-o ProxyJump=none"}),
        );
        let target = target_for("web1", &v, &defaults).unwrap();
        assert_eq!((target.port, target.user.as_str()), (22, "app"));
        assert!(target.jump.is_none());
        let v =
            vars(json!({"ansible_host": "db1", "ansible_ssh_common_args": "-J 'jump@10.9.9.9'"}));
        let target = target_for("x", &v, &defaults).unwrap();
        assert_eq!(target.address, "db1");
        assert_eq!(target.jump.map(|j| j.address), Some("10.9.9.9".to_string()));
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
