//! The reload stage of a plan, templates not yet rendered: from a playbook's
//! `reload` and `validate` sections, or from `herd reload`'s flags.

use std::time::Duration;

use crate::inventory::Vars;
use crate::playbook::{Reload, Validate};
use crate::reload::discover::Strategy;
use crate::reload::{HttpCheck, ReloadSpec, Signal, ValidateSpec};
use crate::template::{Kind, OutputMask, Renderer, TemplateError};

/// Defaults when a playbook says nothing.
pub const DEFAULT_VALIDATE_TIMEOUT: Duration = Duration::from_secs(60);
pub const DEFAULT_SETTLE: Duration = Duration::from_secs(2);
const POLL: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StrategyTemplate {
    Unit(String),
    Pidfile(String),
    Name(String),
    Auto,
}

#[derive(Debug, Clone)]
pub struct ReloadPlan {
    /// `None`: the playbook only validates (no signal is sent).
    pub strategy: Option<StrategyTemplate>,
    pub signal: Signal,
    pub become_: bool,
    pub preflight: Option<String>,
    pub start: Option<String>,
    pub timeout: Duration,
    pub settle: Duration,
    pub http: Option<(String, u16, Option<String>)>,
    pub run: Option<String>,
    pub command_timeout: Duration,
}

impl ReloadPlan {
    pub fn from_playbook(
        reload: Option<&Reload>,
        validate: Option<&Validate>,
        command_timeout: Duration,
    ) -> Option<ReloadPlan> {
        if reload.is_none() && validate.is_none() {
            return None;
        }
        let strategy = reload.map(|r| match (&r.unit, &r.pidfile, &r.name) {
            (Some(unit), _, _) => StrategyTemplate::Unit(unit.clone()),
            (None, Some(pidfile), _) => StrategyTemplate::Pidfile(pidfile.clone()),
            (None, None, Some(name)) => StrategyTemplate::Name(name.clone()),
            (None, None, None) => StrategyTemplate::Auto,
        });
        Some(ReloadPlan {
            strategy,
            signal: match reload.and_then(|r| r.signal.as_deref()) {
                Some("USR2") => Signal::Usr2,
                _ => Signal::Hup,
            },
            become_: reload.is_some_and(|r| r.become_),
            preflight: reload.and_then(|r| r.preflight.clone()),
            start: reload.and_then(|r| r.start.clone()),
            timeout: validate
                .and_then(|v| v.timeout)
                .map_or(DEFAULT_VALIDATE_TIMEOUT, |t| t.0),
            settle: validate
                .and_then(|v| v.settle)
                .map_or(DEFAULT_SETTLE, |t| t.0),
            http: validate
                .and_then(|v| v.http.as_ref())
                .map(|h| (h.url.clone(), h.status, h.contains.clone())),
            run: validate.and_then(|v| v.run.clone()),
            command_timeout,
        })
    }

    /// Every template, with the field it sits in and how it renders.
    pub fn templates(&self) -> Vec<(&'static str, &str, Kind)> {
        let mut all = Vec::new();
        match &self.strategy {
            Some(StrategyTemplate::Unit(t)) => all.push(("reload.unit", t.as_str(), Kind::Plain)),
            Some(StrategyTemplate::Pidfile(t)) => {
                all.push(("reload.pidfile", t.as_str(), Kind::Plain))
            }
            Some(StrategyTemplate::Name(t)) => all.push(("reload.name", t.as_str(), Kind::Plain)),
            _ => {}
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
                let problem = match renderer.render_shown(url, Kind::Plain, shown) {
                    Ok(display) => problem.replace(&rendered, &display),
                    Err(_) => problem,
                };
                (url.clone(), renderer.secrets().mask(&problem))
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
    pub fn render(&self, renderer: &Renderer, vars: &Vars) -> Result<ReloadSpec, TemplateError> {
        let plain = |t: &str| renderer.render(t, Kind::Plain, vars);
        let shell = |t: &Option<String>| {
            t.as_deref()
                .map(|t| renderer.render(t, Kind::Shell, vars))
                .transpose()
        };
        let strategy = match &self.strategy {
            Some(StrategyTemplate::Unit(t)) => Strategy::Unit(plain(t)?),
            Some(StrategyTemplate::Pidfile(t)) => Strategy::Pidfile(plain(t)?),
            Some(StrategyTemplate::Name(t)) => Strategy::Name(plain(t)?),
            Some(StrategyTemplate::Auto) | None => Strategy::Auto,
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
            strategy,
            signal: self.signal,
            become_: self.become_,
            preflight: shell(&self.preflight)?,
            start: shell(&self.start)?,
            validate: ValidateSpec {
                timeout: self.timeout,
                settle: self.settle,
                poll: POLL,
                http,
                run: shell(&self.run)?,
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
