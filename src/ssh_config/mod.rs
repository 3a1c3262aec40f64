//! The OpenSSH client config (`~/.ssh/config` or `-F FILE`), read as `ssh`
//! reads it, for what herd needs of it: `HostName`, `User`, `Port`,
//! `IdentityFile`, `ProxyJump` and `UserKnownHostsFile`.
//!
//! The rules are OpenSSH's: options before the first `Host` apply to every
//! host; `Host` lines take several patterns, `!pattern` excludes; `Match`
//! takes `all`, `host`, `originalhost`, `user`, `localuser`, `exec` (the
//! command runs in the local shell, bounded by [`EXEC_TIMEOUT`]),
//! `canonical` and `final` (herd does not canonicalise host names, so both
//! match only in the final pass that a `Match final` asks for); `Include`
//! reads other files in place (globs, `~`, relative to `~/.ssh`); the first
//! value obtained for an option wins (`IdentityFile` adds up). A line herd
//! cannot read is an error naming file:line:col, before any host is contacted.
//! So is a `HostName`, `User` or ProxyJump hop that ssh would refuse as a
//! name ([`names`]), and a `Match exec` is not run when one of its tokens
//! stands for such a name.

pub mod expand;
pub mod names;
mod parse;
pub mod pattern;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use parse::{ConfigFile, Criterion, EntryKind, Test};

/// How long a `Match exec` command may run before herd gives up on the
/// config (ssh itself would wait for ever).
pub const EXEC_TIMEOUT: Duration = Duration::from_secs(10);

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

impl SshConfigError {
    /// The error pointing at its line (for one that has a line).
    pub fn into_source(self) -> crate::source::SourceError {
        crate::source::SourceError::at(&self.file, &self.text, self.line, self.column, self.message)
    }
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
    /// `ssh host` would see it. Err when a `Match exec` command cannot be
    /// run or does not finish in time.
    pub fn resolve(&self, host: &str) -> Result<HostConfig, SshConfigError> {
        let mut walk = Walk {
            host: host.to_string(),
            original: host.to_string(),
            local_user: expand::local_account(),
            found: HostConfig::default(),
            proxy_set: false,
            final_pass: false,
            wants_final_pass: false,
        };
        walk.file(&self.root, &mut true, false)?;
        if walk.wants_final_pass {
            // As ssh: the second pass sees the host name obtained in the
            // first (Host lines match it), keeps every value obtained, and
            // its HostName lines change nothing.
            walk.host = walk.hostname().to_lowercase();
            walk.found.hostname = Some(walk.host.clone());
            walk.final_pass = true;
            walk.file(&self.root, &mut true, false)?;
        }
        // ssh connects to the name lowercased.
        let mut found = walk.found;
        found.hostname = found.hostname.map(|name| name.to_lowercase());
        Ok(found)
    }
}

/// The state of one pass over the config for one host.
struct Walk {
    /// What `Host` patterns see: the host as given (in the final pass, the
    /// HostName obtained, lowercased). As in ssh, `Host` patterns match
    /// case-sensitively: `Host web1` does not apply to `WEB1`.
    host: String,
    original: String,
    local_user: String,
    found: HostConfig,
    /// A ProxyJump or ProxyCommand (even `none`) was obtained.
    proxy_set: bool,
    /// This is the final pass a `Match final` asked for.
    final_pass: bool,
    /// A `Match final` was read.
    wants_final_pass: bool,
}

impl Walk {
    /// `never` is set inside a file included from a block that did not
    /// apply: nothing in it can apply either.
    fn file(
        &mut self,
        file: &ConfigFile,
        active: &mut bool,
        never: bool,
    ) -> Result<(), SshConfigError> {
        for entry in &file.entries {
            match &entry.kind {
                EntryKind::Host(patterns) => *active = !never && self.host_matches(patterns),
                // As in ssh, a Match line is evaluated (its `exec` run)
                // even in a file included from a block that does not apply.
                EntryKind::Match(criteria) => {
                    let hit =
                        self.match_all(criteria)
                            .map_err(|(column, message)| SshConfigError {
                                file: file.path.clone(),
                                text: file.text.clone(),
                                line: entry.line,
                                column,
                                message,
                            })?;
                    *active = !never && hit;
                }
                EntryKind::Include(files) => {
                    let outer = *active;
                    for included in files {
                        self.file(included, active, never || !outer)?;
                        *active = outer;
                    }
                }
                _ if !*active => {}
                EntryKind::HostName(_) if self.final_pass => {}
                EntryKind::HostName(name) => {
                    if self.found.hostname.is_none() {
                        let name = name
                            .replace("%%", "\u{0}")
                            .replace("%h", &self.host)
                            .replace('\u{0}', "%");
                        names::check_host(&name)
                            .map_err(|m| line_error(file, entry.line, format!("HostName: {m}")))?;
                        self.found.hostname = Some(name);
                    }
                }
                EntryKind::User(user) => {
                    if self.found.user.is_none() {
                        names::check_user(user)
                            .map_err(|m| line_error(file, entry.line, format!("User: {m}")))?;
                        self.found.user = Some(user.clone());
                    }
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
                        check_jump(spec)
                            .map_err(|m| line_error(file, entry.line, format!("ProxyJump: {m}")))?;
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
        Ok(())
    }

    /// The host name obtained so far (`HostName`, else the host as given).
    fn hostname(&self) -> String {
        self.found
            .hostname
            .clone()
            .unwrap_or_else(|| self.host.clone())
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

    /// Whether every criterion holds. As ssh, an `exec` runs only when
    /// the criteria before it held. Err is (column, message).
    fn match_all(&mut self, criteria: &[Criterion]) -> Result<bool, (usize, String)> {
        // `Match host` sees the HostName obtained so far.
        let host = self.hostname().to_lowercase();
        let user = self.found.user.as_deref().unwrap_or(&self.local_user);
        let mut result = true;
        for criterion in criteria {
            let hit = match &criterion.test {
                Test::All => true,
                Test::Canonical => self.final_pass,
                Test::Final => {
                    self.wants_final_pass = true;
                    self.final_pass
                }
                Test::Host(list) => pattern::list(&host, list, true) == Some(true),
                Test::OriginalHost(list) => {
                    pattern::list(&self.original.to_lowercase(), list, true) == Some(true)
                }
                Test::User(list) => pattern::list(user, list, false) == Some(true),
                Test::LocalUser(list) => pattern::list(&self.local_user, list, false) == Some(true),
                Test::Exec(_) if !result => continue,
                Test::Exec(command) => {
                    let mut tokens = expand::Tokens::local(Path::new(""), &self.original);
                    tokens.home = expand::account_home();
                    tokens.host = self.hostname();
                    tokens.port = self.found.port.unwrap_or(22);
                    tokens.user = user.to_string();
                    expand::check_shell_tokens(command, &tokens)
                        .map_err(|m| (criterion.column, m))?;
                    let command = expand::expand_tokens(command, &tokens);
                    run_exec(&command).map_err(|m| (criterion.column, m))?
                }
            };
            if hit == criterion.negated {
                result = false;
            }
        }
        Ok(result)
    }
}

/// An error at the keyword of line `line` of `file`.
fn line_error(file: &ConfigFile, line: usize, message: String) -> SshConfigError {
    let column = file
        .text
        .lines()
        .nth(line.saturating_sub(1))
        .map_or(1, |text| text.len() - text.trim_start().len() + 1);
    SshConfigError {
        file: file.path.clone(),
        text: file.text.clone(),
        line,
        column,
        message,
    }
}

/// The host and user names of a ProxyJump's hops (`[user@]host[:port]`,
/// comma-separated), refused as ssh refuses them.
fn check_jump(spec: &str) -> Result<(), String> {
    if spec.eq_ignore_ascii_case("none") {
        return Ok(());
    }
    for hop in spec.split(',') {
        let hop = hop.strip_prefix("ssh://").unwrap_or(hop);
        let (user, host) = match hop.rsplit_once('@') {
            Some((user, host)) => (Some(user), host),
            None => (None, hop),
        };
        names::check_host(host)?;
        if let Some(user) = user {
            names::check_user(user)?;
        }
    }
    Ok(())
}

/// Runs a `Match exec` command as ssh does (`$SHELL -c`, else `/bin/sh`;
/// no input, output discarded, errors shown): whether it exits with 0.
fn run_exec(command: &str) -> Result<bool, String> {
    use std::os::unix::process::CommandExt;
    let shell = std::env::var_os("SHELL")
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "/bin/sh".into());
    let mut child = Command::new(&shell)
        .arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        // Its own process group, so that a command that hangs is stopped
        // with everything it started.
        .process_group(0)
        .spawn()
        .map_err(|e| {
            format!(
                "cannot run the `Match exec` command `{command}` with {}: {e}",
                Path::new(&shell).display()
            )
        })?;
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(status.success()),
            Ok(None) if started.elapsed() < EXEC_TIMEOUT => {
                std::thread::sleep(Duration::from_millis(10))
            }
            Ok(None) => {
                // SAFETY: kill(2) on the process group herd just created; it
                // has not been reaped, so its id is still its own.
                unsafe { libc::kill(-(child.id() as libc::pid_t), libc::SIGKILL) };
                let _ = child.wait();
                return Err(format!(
                    "the `Match exec` command `{command}` did not finish within {}s",
                    EXEC_TIMEOUT.as_secs()
                ));
            }
            Err(e) => {
                return Err(format!(
                    "cannot wait for the `Match exec` command `{command}`: {e}"
                ))
            }
        }
    }
}
