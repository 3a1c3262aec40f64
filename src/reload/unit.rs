//! systemd, seen from the login shell: the `systemctl` commands herd runs
//! for a unit (as the account whose manager runs it), what the manager says
//! about the unit, and what its refusals mean.
//!
//! herd asks the manager (`systemctl show`) only where that needs no sudo
//! right beyond what the delivery itself needs: the system manager, the
//! login account's own user manager, or, for `delivery: auto` (which reads
//! the host as `become_user` through sudo), that account's manager.
//! Otherwise the unit's processes are found by their cgroup in `/proc`,
//! which any account can read: a least-privilege account whose only right
//! is `systemctl reload UNIT` still finds and proves the master.

use super::place::Scope;
use crate::shell::quote;

/// Who runs `systemctl`, and against which manager.
#[derive(Debug, Clone, Copy)]
pub struct Systemctl<'a> {
    pub scope: Scope,
    /// Through `sudo -n -u USER` (root when `None`), under `become`.
    pub become_: bool,
    pub become_user: Option<&'a str>,
}

impl Systemctl<'_> {
    /// The account whose manager a user-scope command reaches, for messages.
    pub fn account(&self) -> String {
        match (self.become_, self.become_user) {
            (true, Some(user)) => user.to_string(),
            (true, None) => "root".to_string(),
            (false, _) => "the login account".to_string(),
        }
    }

    /// `systemctl [--user] ARGS` as it runs on the host. Through sudo, the
    /// command is systemctl's own argv (no shell), so a sudoers rule naming
    /// exactly `/usr/bin/systemctl --user reload app.service` matches it.
    /// A user manager is reached through `XDG_RUNTIME_DIR`, which is
    /// `/run/user/UID` wherever lingering or a login session started it.
    pub fn command(&self, args: &[&str]) -> String {
        let args: Vec<String> = args.iter().map(|a| quote(a)).collect();
        let user_flag = match self.scope {
            Scope::System => "",
            Scope::User => " --user",
        };
        let tail = format!("systemctl{user_flag} {}", args.join(" "));
        match (self.become_, self.scope) {
            (false, Scope::System) => tail,
            // Not the session's XDG_RUNTIME_DIR: under sudo it may be the
            // login account's, kept by `env_keep`.
            (false, Scope::User) => format!("XDG_RUNTIME_DIR=/run/user/$(id -u) {tail}"),
            (true, Scope::System) => format!(
                "sudo -n -u {} -- {tail}",
                quote(self.become_user.unwrap_or("root"))
            ),
            (true, Scope::User) => {
                let user = quote(self.become_user.unwrap_or("root"));
                format!("XDG_RUNTIME_DIR=/run/user/$(id -u {user}) sudo -n -u {user} -- {tail}")
            }
        }
    }

    /// What a failed `systemctl` said, as the operator needs to hear it.
    /// `action` is what was asked (`reload`, `kill`).
    pub fn explain(&self, unit: &str, action: &str, exit_code: Option<u32>, said: &str) -> String {
        let said = said.trim();
        let first = said.lines().next().unwrap_or("").trim();
        match refusal(exit_code, said) {
            Some(Refusal::NoReload) => format!(
                "{unit} has no ExecReload (systemd: {first}): use `delivery: systemctl-kill` or `delivery: kill`, or give the unit `ExecReload=/bin/kill -HUP $MAINPID`"
            ),
            Some(Refusal::NoSystemManager) => format!(
                "no systemd system manager runs on this host (PID 1 is not systemd: {first}): use `scope: user` for a user unit, or `delivery: kill`"
            ),
            Some(Refusal::NoRuntimeDir) => format!(
                "systemctl --user got no XDG_RUNTIME_DIR ({first}): sudo removed it; let it through with `Defaults:DEPLOY_USER env_keep += \"XDG_RUNTIME_DIR\"`"
            ),
            Some(Refusal::NoBus) if self.scope == Scope::User => {
                let linger = match (self.become_, self.become_user) {
                    (true, Some(user)) => user,
                    _ => "ACCOUNT",
                };
                format!(
                    "no systemd user manager runs for {} ({first}): start one at boot with `loginctl enable-linger {linger}`",
                    self.account()
                )
            }
            Some(Refusal::NoBus) => format!("systemd cannot be reached on this host ({first})"),
            Some(Refusal::Missing) => {
                format!("systemctl is not installed on this host (or not on PATH): {first}")
            }
            Some(Refusal::Sudo(line)) => format!(
                "sudo refused `{} {action} {unit}` ({line}): the sudo rules for this account do not allow it",
                self.command_shown(),
            ),
            Some(Refusal::NoUnit) => format!("systemd knows no unit {unit} ({first})"),
            Some(Refusal::Denied) if self.become_ => format!(
                "systemd refused {} ({first}): that account may not {action} {unit}",
                self.account()
            ),
            Some(Refusal::Denied) => format!(
                "systemd refused the login account ({first}): give `become: true` and a sudo rule for the systemctl command"
            ),
            None => format!(
                "systemctl failed (exit code {}): {}",
                exit_code.map_or("none".to_string(), |c| c.to_string()),
                crate::shell::text_tail(said, 3)
            ),
        }
    }

    fn command_shown(&self) -> &'static str {
        match self.scope {
            Scope::System => "systemctl",
            Scope::User => "systemctl --user",
        }
    }
}

/// A failure of `systemctl` that happened before systemd ran any job:
/// nothing was signalled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    NoReload,
    NoSystemManager,
    NoRuntimeDir,
    NoBus,
    /// systemctl itself is missing (through sudo too).
    Missing,
    /// sudo's own refusal line.
    Sudo(String),
    NoUnit,
    Denied,
}

/// What kind of refusal `said` is, or `None` when systemd may have run the
/// job (an `ExecReload` that failed after its signal went out, say).
pub fn refusal(exit_code: Option<u32>, said: &str) -> Option<Refusal> {
    const SUDO_REFUSES: &[&str] = &[
        "a password is required",
        "not allowed",
        "not in the sudoers",
        "sorry",
        "a terminal is required",
    ];
    if said.contains("not applicable") {
        return Some(Refusal::NoReload);
    }
    if said.contains("has not been booted with systemd") {
        return Some(Refusal::NoSystemManager);
    }
    if said.contains("XDG_RUNTIME_DIR not defined") {
        return Some(Refusal::NoRuntimeDir);
    }
    if said.contains("Failed to connect to bus")
        || said.contains("Failed to connect to user scope bus")
    {
        return Some(Refusal::NoBus);
    }
    // Before sudo's refusals: through sudo, a missing program is
    // `sudo: systemctl: command not found`.
    if exit_code == Some(127)
        || said.contains("systemctl: not found")
        || said.contains("systemctl: command not found")
    {
        return Some(Refusal::Missing);
    }
    // A sudo warning (`sudo: unable to resolve host`) is no refusal.
    if let Some(line) = said
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("sudo:") && SUDO_REFUSES.iter().any(|refuses| l.contains(refuses)))
    {
        return Some(Refusal::Sudo(line.to_string()));
    }
    if said.contains("not found.") || said.contains("not loaded") {
        return Some(Refusal::NoUnit);
    }
    if said.contains("Access denied") || said.contains("Interactive authentication required") {
        return Some(Refusal::Denied);
    }
    None
}

/// The properties herd asks about.
pub const PROPERTIES: &[&str] = &["LoadState", "ActiveState", "MainPID", "ExecReload"];

/// `systemctl show` for the properties herd reads.
pub fn query(systemctl: &Systemctl, unit: &str) -> String {
    let mut args = vec!["show"];
    for property in PROPERTIES {
        args.push("-p");
        args.push(property);
    }
    args.push("--");
    args.push(unit);
    systemctl.command(&args)
}

/// What the manager said about a unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// It answered.
    Said(UnitState),
    /// It could not be asked: why, in its words.
    Failed {
        exit_code: Option<u32>,
        said: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitState {
    /// `loaded`, `not-found`...
    pub load: String,
    /// `active`, `reloading`, `inactive`, `failed`...
    pub active: String,
    /// 0 when systemd knows no main process.
    pub main_pid: u32,
    pub exec_reload: bool,
}

impl UnitState {
    pub fn is_active(&self) -> bool {
        matches!(self.active.as_str(), "active" | "reloading")
    }
}

/// Parses what the snapshot recorded: `rc=N`, then systemctl's output.
pub fn parse(text: &str) -> Answer {
    let mut lines = text.lines();
    let exit_code = lines
        .next()
        .and_then(|l| l.strip_prefix("rc="))
        .and_then(|rc| rc.trim().parse::<u32>().ok());
    let rest: Vec<&str> = lines.collect();
    let value = |key: &str| {
        rest.iter()
            .find_map(|l| l.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
    };
    let state = match (exit_code, value("ActiveState"), value("MainPID")) {
        (Some(0), Some(active), Some(main_pid)) => {
            main_pid.trim().parse().ok().map(|main_pid| UnitState {
                load: value("LoadState").unwrap_or("").to_string(),
                active: active.trim().to_string(),
                main_pid,
                exec_reload: rest.iter().any(|l| {
                    l.strip_prefix("ExecReload=")
                        .is_some_and(|v| !v.trim().is_empty())
                }),
            })
        }
        _ => None,
    };
    match state {
        Some(state) => Answer::Said(state),
        None => Answer::Failed {
            exit_code,
            said: rest.join("\n"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SYSTEM: Systemctl = Systemctl {
        scope: Scope::System,
        become_: false,
        become_user: None,
    };

    #[test]
    fn commands_reach_the_right_manager_as_the_right_account() {
        assert_eq!(
            SYSTEM.command(&["reload", "app.service"]),
            "systemctl reload app.service"
        );
        let root = Systemctl {
            become_: true,
            ..SYSTEM
        };
        assert_eq!(
            root.command(&["reload", "app.service"]),
            "sudo -n -u root -- systemctl reload app.service"
        );
        let mine = Systemctl {
            scope: Scope::User,
            ..SYSTEM
        };
        assert_eq!(
            mine.command(&["reload", "a b"]),
            "XDG_RUNTIME_DIR=/run/user/$(id -u) systemctl --user reload 'a b'"
        );
        let app = Systemctl {
            scope: Scope::User,
            become_: true,
            become_user: Some("app"),
        };
        assert_eq!(
            app.command(&["reload", "app.service"]),
            "XDG_RUNTIME_DIR=/run/user/$(id -u app) sudo -n -u app -- systemctl --user reload app.service"
        );
        assert_eq!(
            query(&SYSTEM, "app.service"),
            "systemctl show -p LoadState -p ActiveState -p MainPID -p ExecReload -- app.service"
        );
    }

    #[test]
    fn the_answer_says_state_main_pid_and_reload() {
        let answer = parse("rc=0\nLoadState=loaded\nActiveState=active\nMainPID=4242\nExecReload={ path=/bin/kill ; argv[]=/bin/kill -HUP $MAINPID ; ignore_errors=no }\n");
        assert_eq!(
            answer,
            Answer::Said(UnitState {
                load: "loaded".into(),
                active: "active".into(),
                main_pid: 4242,
                exec_reload: true,
            })
        );
        let Answer::Said(state) =
            parse("rc=0\nLoadState=not-found\nActiveState=inactive\nMainPID=0\nExecReload=\n")
        else {
            panic!("parsed");
        };
        assert!(!state.is_active() && !state.exec_reload);
        assert_eq!(
            parse("rc=1\nSystem has not been booted with systemd as init system (PID 1). Can't operate.\n"),
            Answer::Failed {
                exit_code: Some(1),
                said: "System has not been booted with systemd as init system (PID 1). Can't operate.".into()
            }
        );
    }

    #[test]
    fn refusals_are_explained_with_what_to_do() {
        let user = Systemctl {
            scope: Scope::User,
            become_: true,
            become_user: Some("app"),
        };
        let explain = |s: &Systemctl, said: &str| s.explain("app.service", "reload", Some(1), said);
        assert!(explain(
            &user,
            "Failed to reload app.service: Job type reload is not applicable for unit app.service."
        )
        .starts_with("app.service has no ExecReload"));
        assert!(explain(&SYSTEM, "System has not been booted with systemd as init system (PID 1). Can't operate.\nFailed to connect to bus: Host is down")
            .starts_with("no systemd system manager runs on this host"));
        assert_eq!(
            explain(&user, "Failed to connect to bus: No such file or directory"),
            "no systemd user manager runs for app (Failed to connect to bus: No such file or directory): start one at boot with `loginctl enable-linger app`"
        );
        assert!(explain(
            &user,
            "sudo: unable to resolve host web1: Name or service not known\nFailed to reload app.service: Unit app.service not found."
        )
        .starts_with("systemd knows no unit app.service"));
        assert_eq!(
            refusal(
                Some(1),
                "Job for app.service failed because the control process exited with error code."
            ),
            None
        );
        assert!(explain(&user, "sudo: a password is required").starts_with(
            "sudo refused `systemctl --user reload app.service` (sudo: a password is required)"
        ));
        assert!(SYSTEM
            .explain(
                "app.service",
                "reload",
                Some(127),
                "sh: 1: systemctl: not found"
            )
            .starts_with("systemctl is not installed on this host"));
        assert_eq!(
            explain(&user, "sudo: systemctl: command not found"),
            "systemctl is not installed on this host (or not on PATH): sudo: systemctl: command not found"
        );
    }
}
