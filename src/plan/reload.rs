//! The reload stage of a plan, templates not yet rendered: from a playbook's
//! `reload` and `validate` sections, or from `herd reload`'s flags.

use std::time::Duration;

use crate::inventory::Vars;
use crate::playbook::{Reload, Validate};
use crate::reload::place::{
    check_container_name, check_unit_name, under_unit, Delivery, KeyError, Keys, Place,
};
use crate::reload::server::{self, AppServer, SignalUse};
use crate::reload::{HttpCheck, ReloadSpec, ValidateSpec};
use crate::template::{Kind, OutputMask, Renderer, TemplateError};

/// Defaults when a playbook says nothing.
pub const DEFAULT_VALIDATE_TIMEOUT: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(100);

/// Why a host's reload cannot be made from the plan.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error(transparent)]
    Template(#[from] TemplateError),
    /// The server or signal rendered for the host is one herd cannot use
    /// there; `key` is `server` or `signal`.
    #[error("{0}")]
    Key(KeyError),
}

/// Checks that a rendered name names exactly one unit or container.
type NameCheck = fn(&str) -> Result<(), String>;

#[derive(Debug, Clone)]
pub struct ReloadPlan {
    /// The server's name, a template: each host may run its own. Resolved
    /// per host (see [`ReloadPlan::render`]).
    pub server: String,
    /// Where the master lives, its texts templates; `None`: the playbook
    /// only validates (no signal is sent).
    pub place: Option<Place<String>>,
    pub delivery: Delivery,
    /// The signal's name, a template; `None`: the server's default.
    pub signal: Option<String>,
    pub become_: bool,
    /// A template.
    pub become_user: Option<String>,
    pub preflight: Option<String>,
    /// Whether the master preloads, a template (`true`, `false`, or empty).
    pub preload: Option<String>,
    pub start: Option<String>,
    pub timeout: Duration,
    /// Unset: the server's default (see [`crate::reload::ValidateSpec`]).
    pub settle: Option<Duration>,
    pub http: Option<(String, u16, Option<String>)>,
    pub run: Option<String>,
    pub command_timeout: Duration,
}

impl Reload {
    /// The keys that choose where the master is and how it is signalled.
    pub fn keys(&self) -> Keys<'_> {
        Keys {
            pidfile: self.pidfile.as_deref(),
            name: self.name.as_deref(),
            unit: self.unit.as_deref(),
            scope: self.scope.as_deref(),
            delivery: self.delivery.as_deref(),
            // An unknown signal is refused with the server (see `check_reload`);
            // a templated one, on each host (see `ReloadPlan::check_server`).
            signal: server::by_name(&self.server)
                .and_then(|server| server.signal(self.signal.as_deref()).ok()),
            container: self.container.as_deref(),
            engine: self.engine.as_deref(),
            compose: self
                .compose
                .as_ref()
                .map(|c| (c.project.as_str(), c.service.as_str())),
        }
    }
}

impl ReloadPlan {
    /// The reload stage of a playbook; a `KeyError` names the `reload` key
    /// at fault (the playbook's checks have refused it already).
    pub fn from_playbook(
        reload: Option<&Reload>,
        validate: Option<&Validate>,
        command_timeout: Duration,
    ) -> Result<Option<ReloadPlan>, KeyError> {
        if reload.is_none() && validate.is_none() {
            return Ok(None);
        }
        let chosen = reload.map(|r| r.keys().choose()).transpose()?;
        Ok(Some(ReloadPlan {
            server: reload.map_or_else(|| server::GUNICORN.name.to_string(), |r| r.server.clone()),
            place: chosen.as_ref().map(|(place, _)| place.clone()),
            delivery: chosen.map_or(Delivery::Kill, |(_, delivery)| delivery),
            signal: reload.and_then(|r| r.signal.clone()),
            become_: reload.is_some_and(|r| r.become_),
            become_user: reload.and_then(|r| r.become_user.clone()),
            preflight: reload.and_then(|r| r.preflight.clone()),
            preload: reload.and_then(|r| r.preload.as_ref()).map(|p| p.text()),
            start: reload.and_then(|r| r.start.clone()),
            timeout: validate
                .and_then(|v| v.timeout)
                .map_or(DEFAULT_VALIDATE_TIMEOUT, |t| t.0),
            settle: validate.and_then(|v| v.settle).map(|t| t.0),
            http: validate
                .and_then(|v| v.http.as_ref())
                .map(|h| (h.url.clone(), h.status, h.contains.clone())),
            run: validate.and_then(|v| v.run.clone()),
            command_timeout,
        }))
    }

    /// Every template, with the field it sits in and how it renders.
    pub fn templates(&self) -> Vec<(&'static str, &str, Kind)> {
        let mut all: Vec<(&'static str, &str, Kind)> = self
            .place
            .iter()
            .flat_map(Place::texts)
            .map(|(field, text)| (field, text.as_str(), Kind::Plain))
            .collect();
        all.push(("reload.server", self.server.as_str(), Kind::Plain));
        if let Some(signal) = &self.signal {
            all.push(("reload.signal", signal.as_str(), Kind::Plain));
        }
        if let Some(preload) = &self.preload {
            all.push(("reload.preload", preload.as_str(), Kind::Plain));
        }
        if let Some(user) = &self.become_user {
            all.push(("reload.become_user", user.as_str(), Kind::Plain));
        }
        for (field, value, kind) in [
            ("reload.preflight", &self.preflight, Kind::Shell),
            ("reload.start", &self.start, Kind::Shell),
            ("validate.run", &self.run, Kind::Shell),
        ] {
            if let Some(value) = value {
                all.push((field, value.as_str(), kind));
            }
        }
        if let Some((url, _, contains)) = &self.http {
            all.push(("validate.http.url", url.as_str(), Kind::Plain));
            if let Some(contains) = contains {
                all.push(("validate.http.contains", contains.as_str(), Kind::Plain));
            }
        }
        all
    }

    /// Whether the health check's URL, rendered for one host, is one herd
    /// can use; if not, the URL as written and what is wrong with it.
    /// Templates must render (checked before this).
    /// The problem quotes the URL as herd shows it (`shown` are the host's
    /// variables with secrets as `***`).
    pub fn check_url(
        &self,
        renderer: &Renderer,
        vars: &Vars,
        shown: &Vars,
    ) -> Result<(), (String, String)> {
        let Some((url, _, _)) = &self.http else {
            return Ok(());
        };
        let Ok(rendered) = renderer.render(url, Kind::Plain, vars) else {
            return Ok(());
        };
        crate::reload::http::parse_url(&rendered)
            .map(|_| ())
            .map_err(|problem| {
                let problem = problem.to_string();
                let problem = match renderer.render_shown(url, Kind::Plain, shown) {
                    Ok(display) => problem.replace(&rendered, &display),
                    Err(_) => problem,
                };
                (url.clone(), renderer.secrets().mask(&problem))
            })
    }

    /// Whether `reload.preload`, rendered for one host, is a yes, a no or
    /// nothing; if not, the template as written and what is wrong.
    pub fn check_preload(&self, renderer: &Renderer, vars: &Vars) -> Result<(), (String, String)> {
        let Some(template) = &self.preload else {
            return Ok(());
        };
        let Ok(rendered) = renderer.render(template, Kind::Plain, vars) else {
            return Ok(());
        };
        preload_value(&rendered)
            .map(drop)
            .map_err(|problem| (template.clone(), renderer.secrets().mask(&problem)))
    }

    /// The server and signal that rendered names give, and whether they go
    /// together and with the place: the checks a playbook's literal names
    /// pass at load time.
    fn resolve(
        &self,
        server: &str,
        signal: Option<&str>,
    ) -> Result<(&'static AppServer, &'static SignalUse), KeyError> {
        let found = server::by_name(server).ok_or_else(|| KeyError {
            key: "server",
            message: format!(
                "unknown server `{server}`: herd reloads {}",
                server::names()
            ),
        })?;
        // A signal that renders empty on a host is none: the server's default.
        let signal = signal.filter(|s| !s.trim().is_empty());
        let signal = found.signal(signal).map_err(|message| KeyError {
            key: "signal",
            message,
        })?;
        if let Some(Place::Unit { .. }) = &self.place {
            under_unit(signal)?;
        }
        Ok((found, signal))
    }

    /// Whether the server and signal, rendered for one host, are ones herd
    /// can use there; if not, the key at fault, its template as written and
    /// what is wrong, as herd may show it. Templates must render (checked
    /// before this).
    pub fn check_server(
        &self,
        renderer: &Renderer,
        vars: &Vars,
        shown: &Vars,
    ) -> Result<(), (&'static str, String, String)> {
        let Ok(server) = renderer.render(&self.server, Kind::Plain, vars) else {
            return Ok(());
        };
        let signal = match &self.signal {
            None => None,
            Some(template) => match renderer.render(template, Kind::Plain, vars) {
                Ok(rendered) => Some((template, rendered)),
                Err(_) => return Ok(()),
            },
        };
        let Err(error) = self.resolve(&server, signal.as_ref().map(|(_, s)| s.as_str())) else {
            return Ok(());
        };
        let mut problem = error.message;
        for (template, rendered) in [(&self.server, &server)]
            .into_iter()
            .chain(signal.as_ref().map(|(t, s)| (*t, s)))
        {
            if let Ok(display) = renderer.render_shown(template, Kind::Plain, shown) {
                if !rendered.is_empty() && display != *rendered {
                    problem = problem.replace(rendered.as_str(), &display);
                }
            }
        }
        // A server's default signal that cannot be used is the server's fault.
        let (key, template) = match (error.key, &self.signal) {
            ("signal", Some(signal)) => ("signal", signal),
            _ => ("server", &self.server),
        };
        Err((key, template.clone(), renderer.secrets().mask(&problem)))
    }

    /// Whether the unit or container, rendered for one host, names exactly
    /// one; if not, the key, the template as written and what is wrong, as
    /// herd may show it.
    pub fn check_names(
        &self,
        renderer: &Renderer,
        vars: &Vars,
        shown: &Vars,
    ) -> Result<(), (&'static str, String, String)> {
        let (key, template, check): (_, _, NameCheck) = match &self.place {
            Some(Place::Unit { unit, .. }) => ("unit", unit, |t| {
                check_unit_name(t).map_err(|e| e.to_string())
            }),
            Some(Place::Container { name, .. }) => ("container", name, |t| {
                check_container_name(t).map_err(|e| e.to_string())
            }),
            _ => return Ok(()),
        };
        let Ok(rendered) = renderer.render(template, Kind::Plain, vars) else {
            return Ok(());
        };
        check(&rendered).map_err(|problem| {
            let problem = match renderer.render_shown(template, Kind::Plain, shown) {
                Ok(display) if !rendered.is_empty() => problem.replace(&rendered, &display),
                _ => problem,
            };
            (key, template.clone(), renderer.secrets().mask(&problem))
        })
    }

    /// The real texts of the values this stage's templates made from
    /// secrets (see [`Renderer::secret_uses`]), to mask in what it prints.
    pub fn secret_uses(&self, renderer: &Renderer, vars: &Vars, shown: &Vars) -> Vec<String> {
        self.templates()
            .into_iter()
            .flat_map(|(_, source, kind)| renderer.secret_uses(source, kind, vars, shown))
            .collect()
    }

    /// `message`, said by this stage on one host, as herd may print it: the
    /// templates it quotes (the health check's URL, a pidfile) in their
    /// display form, and what the stage's commands were given made from
    /// secrets masked (see [`crate::template::Secrets::mask_used`]).
    pub fn shown_message(
        &self,
        renderer: &Renderer,
        vars: &Vars,
        shown: &Vars,
        message: &str,
    ) -> String {
        let mut texts = self.shown_texts(renderer, vars, shown);
        texts.sort_by_key(|(real, _)| std::cmp::Reverse(real.len()));
        let message = texts
            .iter()
            .fold(message.to_string(), |acc, (real, display)| {
                acc.replace(real.as_str(), display)
            });
        let uses = self.secret_uses(renderer, vars, shown);
        renderer.secrets().mask_used(&message, &uses)
    }

    /// Each plain template that uses a secret, rendered for real and for
    /// display: herd's messages quote the display form (a URL with
    /// `token=***`).
    fn shown_texts(&self, renderer: &Renderer, vars: &Vars, shown: &Vars) -> Vec<(String, String)> {
        self.templates()
            .into_iter()
            .filter(|(_, _, kind)| *kind == Kind::Plain)
            .filter_map(|(_, source, kind)| {
                let real = renderer.render(source, kind, vars).ok()?;
                let display = renderer.render_shown(source, kind, shown).ok()?;
                (!real.is_empty() && real != display).then_some((real, display))
            })
            .collect()
    }

    /// The reload of one host.
    pub fn render(&self, renderer: &Renderer, vars: &Vars) -> Result<ReloadSpec, RenderError> {
        self.render_as(renderer, |t, kind| renderer.render(t, kind, vars))
    }

    /// The reload of one host as herd shows it (`herd plan`): `shown` are
    /// its variables as herd shows them, and every secret a template reads
    /// (another host's through `hostvars`, `env.NAME`) is `***`.
    pub fn render_shown(
        &self,
        renderer: &Renderer,
        shown: &Vars,
    ) -> Result<ReloadSpec, RenderError> {
        self.render_as(renderer, |t, kind| renderer.render_shown(t, kind, shown))
    }

    fn render_as(
        &self,
        renderer: &Renderer,
        render: impl Fn(&str, Kind) -> Result<String, TemplateError>,
    ) -> Result<ReloadSpec, RenderError> {
        let plain = |t: &str| render(t, Kind::Plain);
        let (server, signal) = self
            .resolve(
                &plain(&self.server)?,
                self.signal.as_deref().map(plain).transpose()?.as_deref(),
            )
            .map_err(RenderError::Key)?;
        let shell = |t: &Option<String>| t.as_deref().map(|t| render(t, Kind::Shell)).transpose();
        let place = match &self.place {
            Some(place) => place.try_map(|t| plain(t))?,
            None => Place::Host(crate::reload::place::OnHost::Only),
        };
        let http = match &self.http {
            Some((url, status, contains)) => Some(HttpCheck {
                url: plain(url)?,
                status: *status,
                contains: contains.as_deref().map(plain).transpose()?,
            }),
            None => None,
        };
        Ok(ReloadSpec {
            server,
            place,
            delivery: self.delivery,
            signal,
            become_: self.become_,
            become_user: self.become_user.as_deref().map(plain).transpose()?,
            // One that renders empty on a host (read as text: in a shell
            // field an empty value renders quoted, `''`) is none: the
            // server's own check (nginx's) runs there.
            preflight: match &self.preflight {
                Some(p) if plain(p)?.trim().is_empty() => None,
                other => shell(other)?,
            },
            preload: match &self.preload {
                Some(template) => preload_value(&plain(template)?)
                    .map_err(|message| TemplateError::Invalid { message })?,
                None => None,
            },
            start: shell(&self.start)?,
            validate: ValidateSpec {
                timeout: self.timeout,
                settle: self.settle,
                poll: POLL,
                http,
                run: shell(&self.run)?,
                cancel: None,
            },
            command_timeout: self.command_timeout,
            // The uses are added by the host that runs it.
            mask: OutputMask {
                secrets: renderer.secrets().clone(),
                uses: Vec::new(),
            },
        })
    }
}

/// `reload.preload` as rendered: `true`/`false` (YAML's spellings too),
/// or nothing (herd reads it on the host).
fn preload_value(rendered: &str) -> Result<Option<bool>, String> {
    match rendered.trim() {
        "" => Ok(None),
        "true" | "True" | "TRUE" | "yes" | "Yes" | "on" => Ok(Some(true)),
        "false" | "False" | "FALSE" | "no" | "No" | "off" => Ok(Some(false)),
        other => Err(format!(
            "`preload` gave `{other}`: use true, false, or nothing (herd then reads it on the host)"
        )),
    }
}
