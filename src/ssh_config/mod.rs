//! The OpenSSH client config (`~/.ssh/config` or `-F FILE`), read as `ssh`
//! reads it, for what herd needs of it: `HostName`, `User`, `Port`,
//! `IdentityFile`, `ProxyJump` and `UserKnownHostsFile`.
//!
//! The rules are OpenSSH's: options before the first `Host` apply to every
//! host; `Host` lines take several patterns, `!pattern` excludes; `Match`
//! takes `all`, `host`, `originalhost`, `user` and `localuser`; `Include`
//! reads other files in place (globs, `~`, relative to `~/.ssh`); the first
//! value obtained for an option wins (`IdentityFile` adds up). A line herd
//! cannot read is an error naming file:line:col, before any host is contacted.

pub mod expand;
mod parse;
pub mod pattern;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use parse::{ConfigFile, Criterion, EntryKind, Test};

/// A config line herd cannot read (or a config it cannot follow for a host).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshConfigError {
    pub file: PathBuf,
    /// The file's text, to show the line (empty when it could not be read).
    pub text: String,
    /// 1-based; 0 when the file itself could not be read.
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// A parsed client config.
#[derive(Debug, Clone)]
pub struct SshConfig {
    root: ConfigFile,
}

/// What the config says about one host; `None` where it says nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostConfig {
    /// `HostName`, with `%h` expanded.
    pub hostname: Option<String>,
    pub user: Option<String>,
    pub port: Option<u16>,
    /// `IdentityFile`s as written (expand them with [`expand::expand`]).
    pub identity_files: Vec<String>,
    /// `ProxyJump` (`none` included), unless a `ProxyCommand` came first.
    pub proxy_jump: Option<String>,
    /// A `ProxyCommand` other than `none` that came first, and where
    /// (`file:line`): herd cannot run one.
    pub proxy_command: Option<(String, String)>,
    /// `UserKnownHostsFile` as written.
    pub user_known_hosts_files: Option<Vec<String>>,
}

impl SshConfig {
    /// Reads `path` and the files it includes; `home` stands for `~`.
    pub fn load(path: &Path, home: &Path) -> Result<SshConfig, SshConfigError> {
        Ok(SshConfig {
            root: parse::read(path, home)?,
        })
    }

    /// What applies to `host` as given (an alias or a name), the way
    /// `ssh host` would see it.
    pub fn resolve(&self, host: &str) -> HostConfig {
        let mut walk = Walk {
            host: host.to_lowercase(),
            original: host.to_string(),
            local_user: expand::local_account(),
            found: HostConfig::default(),
            proxy_set: false,
        };
        let mut active = true;
        walk.file(&self.root, &mut active, false);
        walk.found
    }
}

/// The state of one pass over the config for one host.
struct Walk {
    /// The host as given, lowercased (what `Host` patterns see).
    host: String,
    original: String,
    local_user: String,
    found: HostConfig,
    /// A ProxyJump or ProxyCommand (even `none`) was obtained.
    proxy_set: bool,
}

impl Walk {
    /// `never` is set inside a file included from a block that did not
    /// apply: nothing in it can apply either.
    fn file(&mut self, file: &ConfigFile, active: &mut bool, never: bool) {
        for entry in &file.entries {
            match &entry.kind {
                EntryKind::Host(patterns) => *active = !never && self.host_matches(patterns),
                EntryKind::Match(criteria) => *active = !never && self.match_all(criteria),
                EntryKind::Include(files) => {
                    let outer = *active;
                    for included in files {
                        self.file(included, active, never || !outer);
                        *active = outer;
                    }
                }
                _ if !*active => {}
                EntryKind::HostName(name) => {
                    self.found.hostname.get_or_insert_with(|| {
                        name.replace("%%", "\u{0}")
                            .replace("%h", &self.host)
                            .replace('\u{0}', "%")
                    });
                }
                EntryKind::User(user) => {
                    self.found.user.get_or_insert_with(|| user.clone());
                }
                EntryKind::Port(port) => {
                    self.found.port.get_or_insert(*port);
                }
                EntryKind::IdentityFile(file) => {
                    if !self.found.identity_files.contains(file) {
                        self.found.identity_files.push(file.clone());
                    }
                }
                EntryKind::ProxyJump(spec) => {
                    if !self.proxy_set {
                        self.proxy_set = true;
                        self.found.proxy_jump = Some(spec.clone());
                    }
                }
                EntryKind::ProxyCommand(command) => {
                    if !self.proxy_set {
                        self.proxy_set = true;
                        if !command.eq_ignore_ascii_case("none") {
                            let at = format!("{}:{}", file.path.display(), entry.line);
                            self.found.proxy_command = Some((command.clone(), at));
                        }
                    }
                }
                EntryKind::UserKnownHostsFile(files) => {
                    self.found
                        .user_known_hosts_files
                        .get_or_insert_with(|| files.clone());
                }
            }
        }
    }

    /// A `Host` line applies when a pattern matches and no `!pattern` does.
    fn host_matches(&self, patterns: &[String]) -> bool {
        let mut matched = false;
        for pattern in patterns {
            let (negated, pattern) = match pattern.strip_prefix('!') {
                Some(rest) => (true, rest),
                None => (false, pattern.as_str()),
            };
            if pattern::wildcard(&self.host, pattern) {
                if negated {
                    return false;
                }
                matched = true;
            }
        }
        matched
    }

    fn match_all(&self, criteria: &[Criterion]) -> bool {
        // `Match host` sees the HostName obtained so far.
        let host = self
            .found
            .hostname
            .clone()
            .unwrap_or_else(|| self.host.clone());
        let user = self.found.user.as_deref().unwrap_or(&self.local_user);
        criteria.iter().all(|criterion| {
            let hit = match &criterion.test {
                Test::All => true,
                Test::Host(list) => pattern::list(&host.to_lowercase(), list, true) == Some(true),
                Test::OriginalHost(list) => {
                    pattern::list(&self.original.to_lowercase(), list, true) == Some(true)
                }
                Test::User(list) => pattern::list(user, list, false) == Some(true),
                Test::LocalUser(list) => pattern::list(&self.local_user, list, false) == Some(true),
            };
            hit != criterion.negated
        })
    }
}
