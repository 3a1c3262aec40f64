//! Turns a host's variables into where and how to connect (Ansible's names).

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::inventory::Vars;
use crate::ssh_config::expand::{expand, Tokens};
use crate::ssh_config::names::{check_host, check_user};
use crate::ssh_config::{HostConfig, SshConfig};
use crate::transport::Target;

/// A connection variable with the wrong type or value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetError {
    pub var: &'static str,
    pub message: String,
    /// Where in the ssh client config the fault is, when it is there.
    pub config: Option<Box<crate::source::SourceError>>,
}

/// Settings from the command line that apply to every host.
#[derive(Debug, Clone, Default)]
pub struct TargetDefaults {
    /// `--known-hosts`, which wins over the inventory's `herd_known_hosts`.
    pub known_hosts: Option<PathBuf>,
    /// The inventory's directory: relative key and known_hosts paths start there.
    pub base_dir: PathBuf,
    /// The OpenSSH client config (`-F`, or `~/.ssh/config`), read.
    pub ssh_config: Option<SshConfig>,
}

/// What `~/.ssh/config` says about one host name, as `ssh NAME` would see it.
fn ssh_config_for(defaults: &TargetDefaults, host: &str) -> Result<HostConfig, TargetError> {
    let Some(config) = &defaults.ssh_config else {
        return Ok(HostConfig::default());
    };
    config.resolve(host).map_err(|e| TargetError {
        var: "ssh_config",
        message: e.message.clone(),
        config: Some(Box::new(e.into_source())),
    })
}

/// The config's `IdentityFile`s and `UserKnownHostsFile`s with their `~`,
/// `${VAR}` and `%` tokens expanded for the host as herd will reach it.
fn config_paths(
    config: &HostConfig,
    alias: &str,
    address: &str,
    port: u16,
    user: &str,
) -> (Vec<PathBuf>, Option<PathBuf>) {
    let mut tokens = Tokens::local(&home(), alias);
    tokens.host = address.to_string();
    tokens.port = port;
    tokens.user = user.to_string();
    let identities = config
        .identity_files
        .iter()
        .map(|file| PathBuf::from(expand(file, &tokens)))
        .collect();
    // herd checks one known_hosts file: the first, where ssh also learns keys.
    let known_hosts = config
        .user_known_hosts_files
        .as_ref()
        .and_then(|files| files.first())
        .map(|file| PathBuf::from(expand(file, &tokens)));
    (identities, known_hosts)
}

/// Where and how to reach a host: inventory variables first, then what
/// `~/.ssh/config` says about its `ansible_host` (or inventory name), as
/// Ansible does when it calls ssh.
pub fn target_for(
    name: &str,
    vars: &Vars,
    defaults: &TargetDefaults,
) -> Result<Target, TargetError> {
    // As ssh, names with shell metacharacters are refused before the config
    // is read: `%h`, `%n` and `%r` reach `Match exec` shells.
    let alias = match text_var(vars, "ansible_host")? {
        Some(host) => {
            check_host(&host).map_err(|m| bad("ansible_host", m))?;
            host
        }
        None => {
            check_host(name).map_err(|m| bad("inventory_hostname", m))?;
            name.to_string()
        }
    };
    if let Some(user) = text_var(vars, "ansible_user")? {
        check_user(&user).map_err(|m| bad("ansible_user", m))?;
    }
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
    let (config_identities, config_known_hosts) =
        config_paths(&config, &alias, &address, port, &user);
    let identity_files = match text_var(vars, "ansible_ssh_private_key_file")? {
        Some(path) => vec![resolve(&path, &defaults.base_dir)],
        None if config_identities.is_empty() => default_identities(),
        None => config_identities,
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
    // `--known-hosts` or `herd_known_hosts` apply to the bastion as well;
    // otherwise each host has the config's own `UserKnownHostsFile`.
    let given_known_hosts = match (&defaults.known_hosts, text_var(vars, "herd_known_hosts")?) {
        (Some(path), _) => Some(path.clone()),
        (None, Some(path)) => Some(resolve(&path, &defaults.base_dir)),
        (None, None) => None,
    };
    let known_hosts = given_known_hosts
        .clone()
        .or(config_known_hosts)
        .unwrap_or_else(|| home().join(".ssh/known_hosts"));
    let inventory_jump = proxy_jump(vars)?;
    if let (None, Some((command, at))) = (&inventory_jump, &config.proxy_command) {
        return Err(bad(
            "ssh_config",
            format!("{at}: `ProxyCommand {command}` applies to {alias}; herd cannot run a ProxyCommand (use ProxyJump)"),
        ));
    }
    let jump_var = match inventory_jump {
        Some(_) => "ansible_ssh_common_args",
        None => "ssh_config",
    };
    let jump = match inventory_jump.or(config.proxy_jump.clone()) {
        Some(spec) if spec != "none" => Some(Box::new(bastion(
            &spec,
            jump_var,
            name,
            &identity_files,
            given_known_hosts.as_deref(),
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
/// `~/.ssh/config` (its own `UserKnownHostsFile` too, as with ssh, unless
/// `--known-hosts` or `herd_known_hosts` names one). One hop: herd reaches
/// the bastion directly.
fn bastion(
    spec: &str,
    var: &'static str,
    behind: &str,
    identities: &[PathBuf],
    given_known_hosts: Option<&Path>,
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
    let refused = |m: String| bad(var, format!("ProxyJump `{spec}`: {m}"));
    check_host(&alias).map_err(refused)?;
    if let Some(user) = &user {
        check_user(user).map_err(refused)?;
    }
    let config = ssh_config_for(defaults, &alias)?;
    let address = config.hostname.clone().unwrap_or_else(|| alias.clone());
    let port = port.or(config.port).unwrap_or(22);
    let user = user.or(config.user.clone()).unwrap_or_else(local_user);
    let (own_identities, own_known_hosts) = config_paths(&config, &alias, &address, port, &user);
    let known_hosts = given_known_hosts
        .map(Path::to_path_buf)
        .or(own_known_hosts)
        .unwrap_or_else(|| home().join(".ssh/known_hosts"));
    Ok(Target {
        name: format!("{alias} (bastion for {behind})"),
        address,
        port,
        user,
        identity_files: if own_identities.is_empty() {
            identities.to_vec()
        } else {
            own_identities
        },
        known_hosts,
        jump: None,
    })
}

fn bad(var: &'static str, message: String) -> TargetError {
    TargetError {
        var,
        message,
        config: None,
    }
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
        let (_dir, config) = config_from(config);
        let defaults = TargetDefaults {
            known_hosts: Some(PathBuf::from("/kh")),
            base_dir: PathBuf::from("/inv"),
            ssh_config: Some(config),
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

    fn config_from(text: &str) -> (tempfile::TempDir, SshConfig) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        std::fs::write(&path, text).unwrap();
        let config = SshConfig::load(&path, dir.path()).unwrap();
        (dir, config)
    }

    #[test]
    fn options_before_the_first_host_apply_and_paths_expand_for_the_host() {
        let (dir, config) = config_from(
            "User deploy\nIdentityFile /keys/%r@%h:%p\nUserKnownHostsFile /kh/%h /kh/second\n\nHost web*\n  HostName %h.internal\n  Port 2200\n",
        );
        let defaults = TargetDefaults {
            known_hosts: None,
            base_dir: PathBuf::from("/inv"),
            ssh_config: Some(config),
        };
        let target = target_for("web1", &Vars::new(), &defaults).unwrap();
        assert_eq!(
            (target.address.as_str(), target.port, target.user.as_str()),
            ("web1.internal", 2200, "deploy")
        );
        assert_eq!(
            target.identity_files,
            vec![PathBuf::from("/keys/deploy@web1.internal:2200")]
        );
        assert_eq!(target.known_hosts, PathBuf::from("/kh/web1.internal"));
        // The inventory's user is the one `%r` stands for; --known-hosts wins.
        let defaults = TargetDefaults {
            known_hosts: Some(PathBuf::from("/given")),
            ..defaults
        };
        let target = target_for("db", &vars(json!({"ansible_user": "app"})), &defaults).unwrap();
        assert_eq!(
            target.identity_files,
            vec![PathBuf::from("/keys/app@db:22")]
        );
        assert_eq!(target.known_hosts, PathBuf::from("/given"));
        drop(dir);
    }

    #[test]
    fn a_bastion_has_its_own_known_hosts_file_unless_one_is_given() {
        let (_dir, config) = config_from(
            "Host gw\n  UserKnownHostsFile /kh/gw\nHost app\n  ProxyJump gw\n  UserKnownHostsFile /kh/app\n",
        );
        let defaults = TargetDefaults {
            ssh_config: Some(config),
            ..TargetDefaults::default()
        };
        let target = target_for("app", &Vars::new(), &defaults).unwrap();
        assert_eq!(target.known_hosts, PathBuf::from("/kh/app"));
        let jump = target.jump.expect("a bastion");
        assert_eq!(jump.known_hosts, PathBuf::from("/kh/gw"));
        let given = vars(json!({"herd_known_hosts": "/inv/kh"}));
        let target = target_for("app", &given, &defaults).unwrap();
        assert_eq!(target.known_hosts, PathBuf::from("/inv/kh"));
        assert_eq!(
            target.jump.map(|j| j.known_hosts),
            Some(PathBuf::from("/inv/kh"))
        );
    }

    #[test]
    fn a_proxy_command_herd_cannot_run_is_an_error_unless_the_inventory_jumps() {
        let (dir, config) = config_from("Host *.corp\n  ProxyCommand nc -X 5 %h %p\n");
        let path = dir.path().join("config");
        let defaults = TargetDefaults {
            ssh_config: Some(config),
            ..TargetDefaults::default()
        };
        let error = target_for("a.corp", &Vars::new(), &defaults).unwrap_err();
        assert_eq!(
            error.message,
            format!(
                "{}:2: `ProxyCommand nc -X 5 %h %p` applies to a.corp; herd cannot run a ProxyCommand (use ProxyJump)",
                path.display()
            )
        );
        let v = vars(json!({"ansible_ssh_common_args": "-J jump"}));
        assert!(target_for("a.corp", &v, &defaults).is_ok());
        assert!(target_for("b.org", &Vars::new(), &defaults).is_ok());
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
