//! Where the master lives and how its signal is delivered: the two choices
//! of a reload, each defined here once. A playbook's `reload` keys and
//! `herd reload`'s flags both come through [`Keys::choose`]; the plan keeps
//! the choice with templates ([`Place<String>`] holding `{{ }}`), the host
//! gets it rendered.

use super::server::{Effect, SignalUse};
use serde::Serialize;

/// Where the master is found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place<S> {
    /// On the host, in its `/proc`.
    Host(OnHost<S>),
    /// Through a systemd unit: its main process is the master. `fallback`
    /// is where `delivery: auto` looks when the unit is not active.
    Unit {
        unit: S,
        scope: Scope,
        fallback: OnHost<S>,
    },
    /// In a container: its PID 1 is the master, or an init whose child is
    /// the master. `engine: None` takes whichever CLI the host has.
    Container { engine: Option<Engine>, name: S },
    /// Every container of a Compose service (found by Compose's labels),
    /// each reloaded as a `Container` and proven before the next.
    Compose {
        engine: Option<Engine>,
        project: S,
        service: S,
    },
}

/// The container engine whose CLI herd runs on the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Engine {
    Docker,
    Podman,
}

impl Engine {
    pub fn parse(text: &str) -> Option<Engine> {
        match text {
            "docker" => Some(Engine::Docker),
            "podman" => Some(Engine::Podman),
            _ => None,
        }
    }

    /// The CLI's name, which is also how a playbook names it.
    pub fn name(self) -> &'static str {
        match self {
            Engine::Docker => "docker",
            Engine::Podman => "podman",
        }
    }
}

/// How the master is found on the host itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OnHost<S> {
    Pidfile(S),
    /// The master's name (`gunicorn: master [NAME]`, `--name NAME`).
    Name(S),
    /// The one master of the server on the host.
    Only,
}

/// Which systemd manager runs the unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// The system manager (`systemctl`).
    System,
    /// A user manager (`systemctl --user`): the login account's, or under
    /// `become_user` that account's.
    User,
}

/// How the signal reaches the master. Reports spell it as the playbook does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Delivery {
    /// `kill` from the host's shell, guarded against pid reuse; as the login
    /// account or, under `become`, through sudo.
    Kill,
    /// `systemctl [--user] reload UNIT`: the unit's `ExecReload`.
    Systemctl,
    /// `systemctl [--user] kill --kill-whom=main --signal=SIG UNIT`.
    SystemctlKill,
    /// `systemctl` when the unit is active and has `ExecReload`; `kill` to
    /// its main process when it has none; when the unit is not active, `kill`
    /// to the master found on the host. In a container, one of the two below.
    Auto,
    /// `ENGINE kill --signal=SIG NAME`: to the container's PID 1, the master
    /// or an init that forwards the signal to it.
    ContainerKill,
    /// `ENGINE exec NAME kill -SIG PID`: to the master inside the container,
    /// whose PID 1 is some other process.
    ContainerExec,
}

impl Delivery {
    pub fn parse(text: &str) -> Option<Delivery> {
        match text {
            "kill" => Some(Delivery::Kill),
            "systemctl" => Some(Delivery::Systemctl),
            "systemctl-kill" => Some(Delivery::SystemctlKill),
            "auto" => Some(Delivery::Auto),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Delivery::Kill => "kill",
            Delivery::Systemctl => "systemctl",
            Delivery::SystemctlKill => "systemctl-kill",
            Delivery::Auto => "auto",
            Delivery::ContainerKill => "container-kill",
            Delivery::ContainerExec => "container-exec",
        }
    }
}

impl Scope {
    pub fn parse(text: &str) -> Option<Scope> {
        match text {
            "system" => Some(Scope::System),
            "user" => Some(Scope::User),
            _ => None,
        }
    }
}

/// The keys that choose a place and a delivery, as written.
#[derive(Debug, Clone, Default)]
pub struct Keys<'a> {
    pub pidfile: Option<&'a str>,
    pub name: Option<&'a str>,
    pub unit: Option<&'a str>,
    pub scope: Option<&'a str>,
    pub delivery: Option<&'a str>,
    /// The signal, when the playbook names one.
    pub signal: Option<&'static SignalUse>,
    pub container: Option<&'a str>,
    pub engine: Option<&'a str>,
    /// `compose`'s project and service.
    pub compose: Option<(&'a str, &'a str)>,
}

/// A choice the keys cannot make; `key` is the one to point at.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct KeyError {
    pub key: &'static str,
    pub message: String,
}

fn refuse(key: &'static str, message: impl Into<String>) -> KeyError {
    KeyError {
        key,
        message: message.into(),
    }
}

impl Keys<'_> {
    /// The place and the delivery the keys name, or why they make no sense
    /// together.
    pub fn choose(&self) -> Result<(Place<String>, Delivery), KeyError> {
        match (self.container, self.compose) {
            (Some(_), Some(_)) => {
                return Err(refuse(
                    "compose",
                    "`container` and `compose` both say which containers: give one",
                ))
            }
            (Some(container), None) => return self.in_container(container),
            (None, Some((project, service))) => {
                let (place, delivery) = self.in_container(service)?;
                let Place::Container { engine, .. } = place else {
                    return Ok((place, delivery));
                };
                return Ok((
                    Place::Compose {
                        engine,
                        project: project.to_string(),
                        service: service.to_string(),
                    },
                    delivery,
                ));
            }
            (None, None) => {}
        }
        if self.engine.is_some() {
            return Err(refuse(
                "engine",
                "`engine` says which CLI runs `container` or `compose`, and there is neither",
            ));
        }
        let on_host =
            match (self.pidfile, self.name) {
                (Some(_), Some(_)) => return Err(refuse(
                    "name",
                    "`pidfile` and `name` both say how to find the master on the host: give one",
                )),
                (Some(pidfile), None) => OnHost::Pidfile(pidfile.to_string()),
                (None, Some(name)) => OnHost::Name(name.to_string()),
                (None, None) => OnHost::Only,
            };
        let delivery = match self.delivery {
            None => None,
            Some(text) => Some(Delivery::parse(text).ok_or_else(|| {
                refuse(
                    "delivery",
                    format!(
                        "unknown delivery `{text}`: use kill, systemctl, systemctl-kill or auto"
                    ),
                )
            })?),
        };
        let scope = match self.scope {
            None => Scope::System,
            Some(text) => Scope::parse(text).ok_or_else(|| {
                refuse(
                    "scope",
                    format!("unknown scope `{text}`: use system or user"),
                )
            })?,
        };
        let Some(unit) = self.unit else {
            if self.scope.is_some() {
                return Err(refuse(
                    "scope",
                    "`scope` says which systemd manager runs `unit`, and there is no `unit`",
                ));
            }
            return match delivery {
                None | Some(Delivery::Kill) => Ok((Place::Host(on_host), Delivery::Kill)),
                Some(other) => Err(refuse(
                    "delivery",
                    format!(
                        "`delivery: {}` goes through systemd and needs `unit`",
                        other.name()
                    ),
                )),
            };
        };
        if let Some(signal) = self.signal {
            under_unit(signal)?;
        }
        let delivery = delivery.unwrap_or(Delivery::Auto);
        if delivery != Delivery::Auto && on_host != OnHost::Only {
            let key = if self.pidfile.is_some() {
                "pidfile"
            } else {
                "name"
            };
            return Err(refuse(
                key,
                format!(
                    "with `unit`, `{key}` is where `delivery: auto` looks when the unit is not active; `delivery: {}` never looks there",
                    delivery.name()
                ),
            ));
        }
        Ok((
            Place::Unit {
                unit: unit.to_string(),
                scope,
                fallback: on_host,
            },
            delivery,
        ))
    }
}

/// Whether `signal` can go to the master of a systemd unit: not one that
/// starts a new master.
pub fn under_unit(signal: &SignalUse) -> Result<(), KeyError> {
    if matches!(signal.effect, Effect::NewMaster(_)) {
        return Err(refuse(
            "signal",
            format!("`signal: {}` cannot be used with `unit`: the new master is the old one's child, and systemd stops the service when the old master exits", signal.name),
        ));
    }
    Ok(())
}

impl Keys<'_> {
    /// `container`, with the keys that make no sense beside it refused.
    fn in_container(&self, name: &str) -> Result<(Place<String>, Delivery), KeyError> {
        for (key, given) in [
            ("unit", self.unit.is_some()),
            ("pidfile", self.pidfile.is_some()),
            ("name", self.name.is_some()),
            ("scope", self.scope.is_some()),
        ] {
            if given {
                return Err(refuse(
                    key,
                    format!("`{key}` cannot be used with a container: herd finds the master as the container's PID 1 or its child"),
                ));
            }
        }
        match self.delivery {
            None | Some("auto") => {}
            Some(other) => {
                return Err(refuse(
                    "delivery",
                    format!("`delivery: {other}` cannot be used with a container: herd signals through the engine (`kill` to PID 1, or `exec` into the container)"),
                ))
            }
        }
        let engine = match self.engine {
            None => None,
            Some(text) => Some(Engine::parse(text).ok_or_else(|| {
                refuse(
                    "engine",
                    format!("unknown engine `{text}`: use docker or podman"),
                )
            })?),
        };
        Ok((
            Place::Container {
                engine,
                name: name.to_string(),
            },
            Delivery::Auto,
        ))
    }
}

impl<S> Place<S> {
    /// The same place with every text mapped (rendering a template).
    pub fn try_map<T, E>(&self, mut f: impl FnMut(&S) -> Result<T, E>) -> Result<Place<T>, E> {
        Ok(match self {
            Place::Host(on_host) => Place::Host(on_host.try_map(&mut f)?),
            Place::Unit {
                unit,
                scope,
                fallback,
            } => Place::Unit {
                unit: f(unit)?,
                scope: *scope,
                fallback: fallback.try_map(&mut f)?,
            },
            Place::Container { engine, name } => Place::Container {
                engine: *engine,
                name: f(name)?,
            },
            Place::Compose {
                engine,
                project,
                service,
            } => Place::Compose {
                engine: *engine,
                project: f(project)?,
                service: f(service)?,
            },
        })
    }

    /// Every text with the key it came from.
    pub fn texts(&self) -> Vec<(&'static str, &S)> {
        let mut all = Vec::new();
        let on_host = match self {
            Place::Host(on_host) => on_host,
            Place::Unit { unit, fallback, .. } => {
                all.push(("reload.unit", unit));
                fallback
            }
            Place::Container { name, .. } => {
                all.push(("reload.container", name));
                return all;
            }
            Place::Compose {
                project, service, ..
            } => {
                all.push(("reload.compose.project", project));
                all.push(("reload.compose.service", service));
                return all;
            }
        };
        match on_host {
            OnHost::Pidfile(pidfile) => all.push(("reload.pidfile", pidfile)),
            OnHost::Name(name) => all.push(("reload.name", name)),
            OnHost::Only => {}
        }
        all
    }

    /// The pidfile the master may be found from.
    pub fn pidfile(&self) -> Option<&S> {
        match self {
            Place::Host(OnHost::Pidfile(path))
            | Place::Unit {
                fallback: OnHost::Pidfile(path),
                ..
            } => Some(path),
            _ => None,
        }
    }
}

impl<S> OnHost<S> {
    fn try_map<T, E>(&self, f: &mut impl FnMut(&S) -> Result<T, E>) -> Result<OnHost<T>, E> {
        Ok(match self {
            OnHost::Pidfile(path) => OnHost::Pidfile(f(path)?),
            OnHost::Name(name) => OnHost::Name(f(name)?),
            OnHost::Only => OnHost::Only,
        })
    }
}

impl OnHost<String> {
    /// How the master is looked for, for reports.
    pub fn describe(&self, server: &str) -> String {
        match self {
            OnHost::Pidfile(path) => format!("pidfile {path}"),
            OnHost::Name(name) => format!("named {name}"),
            OnHost::Only => format!("the only {server} master"),
        }
    }
}

/// Why a rendered unit name cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnitNameError {
    #[error("the unit name is empty")]
    Empty,
    #[error("`{0}` is not one unit: a unit name holds only letters, digits and `:_.@-` (no patterns, spaces or slashes)")]
    NotAName(String),
    #[error("`{0}` starts with `-`, which systemctl would read as an option")]
    Option(String),
}

/// Checks that `unit` names one unit: systemctl expands patterns (`app*`
/// would reload or signal every matching unit) and reads `-x` as an option.
pub fn check_unit_name(unit: &str) -> Result<(), UnitNameError> {
    if unit.is_empty() {
        return Err(UnitNameError::Empty);
    }
    if unit.starts_with('-') {
        return Err(UnitNameError::Option(unit.to_string()));
    }
    if unit.len() > 255
        || !unit
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b":_.@-\\".contains(&b))
    {
        return Err(UnitNameError::NotAName(unit.to_string()));
    }
    Ok(())
}

/// Why a rendered container name cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a container name: one starts with a letter or digit and holds only letters, digits and `_.-`")]
pub struct ContainerNameError(pub String);

/// Checks that `name` is one container's name (as Docker and Podman allow them).
pub fn check_container_name(name: &str) -> Result<(), ContainerNameError> {
    let mut bytes = name.bytes();
    let first_ok = bytes.next().is_some_and(|b| b.is_ascii_alphanumeric());
    if first_ok
        && bytes.all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
        && name.len() <= 255
    {
        Ok(())
    } else {
        Err(ContainerNameError(name.to_string()))
    }
}

/// `app` is `app.service` to systemd; herd matches cgroups by the full name.
pub fn unit_name(unit: &str) -> String {
    const TYPES: &[&str] = &[
        ".service", ".socket", ".target", ".scope", ".slice", ".mount", ".timer", ".path",
    ];
    if TYPES.iter().any(|t| unit.ends_with(t)) {
        unit.to_string()
    } else {
        format!("{unit}.service")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn choose(keys: Keys) -> Result<(Place<String>, Delivery), KeyError> {
        keys.choose()
    }

    #[test]
    fn without_a_unit_the_master_is_on_the_host_and_killed() {
        assert_eq!(
            choose(Keys::default()),
            Ok((Place::Host(OnHost::Only), Delivery::Kill))
        );
        assert_eq!(
            choose(Keys {
                pidfile: Some("/run/app.pid"),
                delivery: Some("kill"),
                ..Keys::default()
            }),
            Ok((
                Place::Host(OnHost::Pidfile("/run/app.pid".into())),
                Delivery::Kill
            ))
        );
    }

    #[test]
    fn a_unit_defaults_to_auto_in_the_system_manager_with_the_host_as_fallback() {
        assert_eq!(
            choose(Keys {
                unit: Some("app.service"),
                pidfile: Some("/run/app.pid"),
                ..Keys::default()
            }),
            Ok((
                Place::Unit {
                    unit: "app.service".into(),
                    scope: Scope::System,
                    fallback: OnHost::Pidfile("/run/app.pid".into()),
                },
                Delivery::Auto
            ))
        );
        let (place, delivery) = choose(Keys {
            unit: Some("app"),
            scope: Some("user"),
            delivery: Some("systemctl-kill"),
            ..Keys::default()
        })
        .unwrap();
        assert_eq!(delivery, Delivery::SystemctlKill);
        assert!(matches!(
            place,
            Place::Unit {
                scope: Scope::User,
                ..
            }
        ));
    }

    #[test]
    fn choices_that_contradict_each_other_name_the_key_at_fault() {
        let refused = |keys: Keys| choose(keys).unwrap_err();
        let error = refused(Keys {
            delivery: Some("systemctl"),
            ..Keys::default()
        });
        assert_eq!(error.key, "delivery");
        assert_eq!(
            error.message,
            "`delivery: systemctl` goes through systemd and needs `unit`"
        );
        assert_eq!(
            refused(Keys {
                scope: Some("user"),
                ..Keys::default()
            })
            .key,
            "scope"
        );
        assert_eq!(
            refused(Keys {
                unit: Some("a"),
                scope: Some("session"),
                ..Keys::default()
            })
            .message,
            "unknown scope `session`: use system or user"
        );
        assert_eq!(
            refused(Keys {
                unit: Some("a"),
                delivery: Some("signal"),
                ..Keys::default()
            })
            .message,
            "unknown delivery `signal`: use kill, systemctl, systemctl-kill or auto"
        );
        let error = refused(Keys {
            unit: Some("a"),
            pidfile: Some("/p"),
            delivery: Some("systemctl"),
            ..Keys::default()
        });
        assert_eq!(error.key, "pidfile");
        let error = refused(Keys {
            unit: Some("a"),
            signal: Some(&crate::reload::server::GUNICORN.signals[1]),
            ..Keys::default()
        });
        assert_eq!(error.key, "signal");
        assert!(error
            .message
            .contains("systemd stops the service when the old master exits"));
        assert_eq!(
            refused(Keys {
                pidfile: Some("/p"),
                name: Some("web"),
                ..Keys::default()
            })
            .key,
            "name"
        );
    }

    #[test]
    fn only_one_plain_unit_name_passes() {
        for good in [
            "app",
            "app.service",
            "app@1.service",
            "my_app-2:x.socket",
            "a\\x2d.service",
        ] {
            assert_eq!(check_unit_name(good), Ok(()), "{good}");
        }
        for bad in [
            "*",
            "app*",
            "app?.service",
            "[ab].service",
            "a b",
            "a/b",
            "app\n",
            "$(id)",
        ] {
            assert!(
                matches!(check_unit_name(bad), Err(UnitNameError::NotAName(_))),
                "{bad}"
            );
        }
        assert_eq!(check_unit_name(""), Err(UnitNameError::Empty));
        assert_eq!(
            check_unit_name("--all").unwrap_err().to_string(),
            "`--all` starts with `-`, which systemctl would read as an option"
        );
    }

    #[test]
    fn a_container_stands_alone_and_names_its_engine() {
        assert_eq!(
            choose(Keys {
                container: Some("web"),
                engine: Some("podman"),
                ..Keys::default()
            }),
            Ok((
                Place::Container {
                    engine: Some(Engine::Podman),
                    name: "web".into()
                },
                Delivery::Auto
            ))
        );
        let refused = |keys: Keys| choose(keys).unwrap_err();
        for (keys, key) in [
            (
                Keys {
                    container: Some("web"),
                    unit: Some("a"),
                    ..Keys::default()
                },
                "unit",
            ),
            (
                Keys {
                    container: Some("web"),
                    pidfile: Some("/p"),
                    ..Keys::default()
                },
                "pidfile",
            ),
            (
                Keys {
                    container: Some("web"),
                    delivery: Some("kill"),
                    ..Keys::default()
                },
                "delivery",
            ),
            (
                Keys {
                    container: Some("web"),
                    engine: Some("lxc"),
                    ..Keys::default()
                },
                "engine",
            ),
            (
                Keys {
                    engine: Some("docker"),
                    ..Keys::default()
                },
                "engine",
            ),
        ] {
            assert_eq!(refused(keys).key, key);
        }
        assert_eq!(
            choose(Keys {
                compose: Some(("shop", "web")),
                ..Keys::default()
            }),
            Ok((
                Place::Compose {
                    engine: None,
                    project: "shop".into(),
                    service: "web".into()
                },
                Delivery::Auto
            ))
        );
        assert_eq!(check_container_name("web-1_a.b"), Ok(()));
        for bad in ["", "-x", "a b", "a/b", "$(id)", "a*"] {
            assert!(check_container_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_bare_unit_name_is_a_service() {
        assert_eq!(unit_name("app"), "app.service");
        assert_eq!(unit_name("app.service"), "app.service");
        assert_eq!(unit_name("app@1.service"), "app@1.service");
    }
}
