//! Releases: `release:` in a playbook makes herd keep a Capistrano-style
//! layout on each host and do its mechanics itself.
//!
//! ```text
//! PATH/releases/ID/           one directory per release, with .herd-release.json
//! PATH/shared/                files and directories every release links to
//! PATH/current -> releases/ID the release being served
//! PATH/.herd-switch           the last switch: current, previous, at, by, command
//! ```
//!
//! The mechanics are steps herd adds around the playbook's own, so they
//! show, fail, roll back and are reported like any other step:
//! - *prepare* (first): creates `releases/ID` and writes its manifest;
//! - *switch* (after the playbook's steps, before the reload): links the
//!   shared paths, switches `current` atomically (a new symlink renamed over
//!   it) and records the switch;
//! - *prune* (once the reload is proven): removes releases past `keep`;
//! - *restore* (first of the rollback): puts back the `current` a failed
//!   host had before, or removes the release directory this run created
//!   when `current` never named it.
//!
//! `herd rollback` replaces the steps with one *rollback switch* to the
//! target release, and keeps *restore* for a host whose rollback fails.
//!
//! "Previous" is what `current` named before the last switch, kept in
//! `.herd-switch`; pruning never removes it, nor the current release, nor
//! a release herd did not make (one without a manifest).

pub mod survey;

use serde_json::Value;

use crate::inventory::Vars;
use crate::plan::step::{Action, StepPlan};
use crate::playbook::Release;

/// The manifest in each release directory.
pub const MANIFEST: &str = ".herd-release.json";
/// The record of the last switch, in the release path.
pub const SWITCH_RECORD: &str = ".herd-switch";

/// Variables herd sets on each host of a playbook with `release:`.
pub mod var {
    /// The release's directory, `PATH/releases/ID`: steps run there.
    pub const DIR: &str = "release_dir";
    /// `release` is the release's id when the playbook does not set it.
    pub const RELEASE: &str = "release";
    pub const PATH: &str = "herd_release_path";
    pub const ID: &str = "herd_release_id";
    pub const MANIFEST: &str = "herd_release_manifest";
    pub const BY: &str = "herd_release_by";
    /// Captured by the prepare (or rollback switch) step: `1:` when it
    /// created the release directory, `0:` when it existed, then what
    /// `current` pointed to before (empty when there was none).
    pub const BEFORE: &str = "herd_release_before";
    /// `herd rollback`: what `current` named when herd read the host.
    pub const EXPECT: &str = "herd_release_expect";
}

/// Every release script checks the id again before using it in a path.
const SAFE_ID: &str = "case $id in ''|.*|-*|*/*) echo \"unsafe release id\" >&2; exit 1 ;; esac\n";

/// Why a release id or shared path is refused.
pub fn check_id(id: &str) -> Result<(), String> {
    let safe = !id.is_empty()
        && id.len() <= 128
        && !id.starts_with('.')
        && !id.starts_with('-')
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '+'));
    if safe {
        Ok(())
    } else {
        Err(format!(
            "release id `{id}` is not a safe file name: use letters, digits, `.`, `_`, `-` and `+`, \
             not starting with `.` or `-`, at most 128 characters"
        ))
    }
}

/// A shared path: relative, inside `shared/`, written plainly.
pub fn check_shared(path: &str) -> Result<(), String> {
    let trimmed = path.trim_end_matches('/');
    let fine = !trimmed.is_empty()
        && !path.starts_with('/')
        && trimmed
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..")
        && path
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/' | '+'));
    if fine {
        Ok(())
    } else {
        Err(format!(
            "shared path `{path}` must be relative to shared/, without `.` or `..` parts, \
             in letters, digits, `.`, `_`, `-`, `+` and `/` (a trailing `/` makes it a directory)"
        ))
    }
}

/// The default release id: the UTC time, `20261130T021500Z`.
pub fn timestamp_id() -> String {
    crate::engine::lock::now_utc().replace(['-', ':'], "")
}

/// `release:` as a plan carries it.
#[derive(Debug, Clone)]
pub struct ReleasePlan {
    pub path: String,
    pub id: Option<String>,
    pub keep: u64,
    pub shared: Vec<String>,
    pub become_: bool,
    pub become_user: Option<String>,
    /// Each of herd's release steps may take this long.
    pub timeout: std::time::Duration,
}

impl ReleasePlan {
    pub fn from_playbook(release: &Release, timeout: std::time::Duration) -> ReleasePlan {
        ReleasePlan {
            path: release.path.clone(),
            id: release.id.clone(),
            keep: release.keep,
            shared: release.shared.clone(),
            become_: release.become_,
            become_user: release.become_user.clone(),
            timeout,
        }
    }

    /// The variable `id` reads when it is exactly `{{ NAME }}`: during a
    /// rollback it names the target, as `release` does.
    pub fn id_variable(&self) -> Option<String> {
        let inner = self
            .id
            .as_deref()?
            .trim()
            .strip_prefix("{{")?
            .strip_suffix("}}")?
            .trim();
        crate::playbook::is_identifier(inner).then(|| inner.to_string())
    }

    fn step(&self, name: String, script: String) -> StepPlan {
        StepPlan {
            name,
            action: Action::Run(script),
            cwd: None,
            env: Vec::new(),
            timeout: self.timeout,
            become_: self.become_,
            become_user: self.become_user.clone(),
            once: false,
            capture: None,
            ignore_errors: false,
            local: None,
            when: Default::default(),
        }
    }

    /// Creates `releases/ID` afresh with its manifest; captures what
    /// `current` named. The release `current` serves and the previous one
    /// (the rollback target) are never built over; any other directory of
    /// that name (an old release, one a failed run left) is rebuilt from nothing.
    pub fn prepare_step(&self) -> StepPlan {
        let script = format!(
            "{enter}\n\
             if [ -e current ] && [ ! -L current ]; then\n  \
               echo \"$PWD/current is not a symlink: herd switches releases by replacing a symlink\" >&2; exit 1\n\
             fi\n\
             mkdir -p releases shared || exit 1\n\
             id={{{{ {id} }}}}\n{safe}\
             old=$(readlink current 2>/dev/null) || old=\n\
             case $old in releases/\"$id\"|\"$PWD\"/releases/\"$id\")\n  \
               echo \"$id is the release current serves here: herd does not build over a running release; deploy a new id\" >&2; exit 1 ;;\n\
             esac\n\
             if [ -d \"releases/$id\" ] && [ \"$(sed -n 's/^previous //p' {SWITCH_RECORD} 2>/dev/null)\" = \"$id\" ]; then\n  \
               echo \"$id is the previous release here, the one herd rollback goes back to: herd does not rebuild it; switch to it with herd rollback --to $id, or deploy a new id\" >&2; exit 1\n\
             fi\n\
             rm -rf -- \"releases/$id\" && mkdir \"releases/$id\" || exit 1\n\
             printf '%s\\n' {{{{ {manifest} }}}} > \"releases/$id/{MANIFEST}\" || exit 1\n\
             printf '1:%s\\n' \"$old\"",
            enter = enter(true),
            id = var::ID,
            safe = SAFE_ID,
            manifest = var::MANIFEST,
        );
        let mut step = self.step("release: prepare".into(), script);
        step.capture = Some(var::BEFORE.to_string());
        step
    }

    /// Links the shared paths, switches `current` and records the switch.
    pub fn switch_step(&self) -> StepPlan {
        let mut script = format!(
            "{enter}\nid={{{{ {id} }}}}\n{safe}\
             [ -d \"releases/$id\" ] || {{ echo \"$PWD/releases/$id is missing\" >&2; exit 1; }}\n",
            enter = enter(false),
            id = var::ID,
            safe = SAFE_ID,
        );
        for shared in &self.shared {
            script.push_str(&link_shared(shared));
        }
        script.push_str(&switch_current("run"));
        self.step("release: switch current".into(), script)
    }

    /// Removes releases past `keep`, oldest first: only releases herd made,
    /// never the current or the previous one. Runs once the new release is
    /// proven served, so a failed deploy never costs a rollback target.
    pub fn prune_step(&self) -> StepPlan {
        let script = format!(
            "{enter}\n\
             now=$(readlink current 2>/dev/null) || now=\n\
             current=${{now##*/}}\n\
             previous=$(sed -n 's/^previous //p' {SWITCH_RECORD} 2>/dev/null)\n\
             keep={keep}\nn=0\n\
             ls -1t releases/*/{MANIFEST} 2>/dev/null | while IFS= read -r f; do\n  \
               d=${{f%/{MANIFEST}}}; r=${{d#releases/}}; n=$((n + 1))\n  \
               if [ \"$n\" -le \"$keep\" ] || [ \"$r\" = \"$current\" ] || [ \"$r\" = \"$previous\" ]; then continue; fi\n  \
               rm -rf -- \"$d\" && echo \"pruned $r\"\n\
             done\n\
             exit 0",
            enter = enter(false),
            keep = self.keep,
        );
        self.step("release: prune".into(), script)
    }

    /// `herd rollback`: switches `current` to the target (`herd_release_id`).
    pub fn rollback_switch_step(&self) -> StepPlan {
        let mut script = format!(
            "{enter}\nid={{{{ {id} }}}}\n{safe}expect={{{{ {expect} }}}}\n\
             [ -d \"releases/$id\" ] || {{ echo \"$PWD/releases/$id does not exist on this host\" >&2; exit 1; }}\n\
             seen=$(readlink current 2>/dev/null) || seen=\n\
             [ \"$seen\" = \"$expect\" ] || {{ echo \"current changed since herd rollback read it (it named ${{expect:-nothing}}, now ${{seen:-nothing}}): another deploy ran; nothing changed here\" >&2; exit 1; }}\n",
            enter = enter(false),
            id = var::ID,
            safe = SAFE_ID,
            expect = var::EXPECT,
        );
        script.push_str(&switch_current("rollback"));
        script.push_str("printf '0:%s\\n' \"$old\"");
        let mut step = self.step("release: switch current back".into(), script);
        step.capture = Some(var::BEFORE.to_string());
        step
    }

    /// Puts back what `current` named before this run's switch (and the
    /// switch record). A release directory this run created is removed
    /// when `current` never named it; once it did, the server may be
    /// running in it until the restore's reload, so it stays (pruning
    /// removes it later).
    pub fn restore_step(&self) -> StepPlan {
        let script = format!(
            "{enter}\nid={{{{ {id} }}}}\n{safe}state={{{{ {before} }}}}\n\
             [ -n \"$state\" ] || exit 0\n\
             created=${{state%%:*}}; old=${{state#*:}}\n\
             now=$(readlink current 2>/dev/null) || now=\n\
             if [ \"$now\" = \"releases/$id\" ] && [ \"$old\" != \"releases/$id\" ]; then\n  \
               if [ -n \"$old\" ]; then\n    \
                 ln -sfn -- \"$old\" .current.herd-$$ && mv -f -T .current.herd-$$ current || {{ rm -f .current.herd-$$; exit 1; }}\n  \
               else\n    \
                 rm -f current || exit 1\n  \
               fi\n  \
               if [ -f {SWITCH_RECORD}.before ]; then mv -f {SWITCH_RECORD}.before {SWITCH_RECORD}; else rm -f {SWITCH_RECORD}; fi\n  \
               echo \"current is ${{old:-gone}} again\"\n\
             elif [ \"$created\" = 1 ] && [ -d \"releases/$id\" ]; then\n  \
               rm -rf -- \"releases/$id\" && echo \"removed releases/$id\"\n\
             fi\n\
             exit 0",
            enter = enter(false),
            id = var::ID,
            safe = SAFE_ID,
            before = var::BEFORE,
        );
        self.step("release: restore current".into(), script)
    }

    /// The variables herd sets on a host: its release path and id (`id`
    /// rendered already), the manifest and who switches.
    pub fn host_vars(&self, vars: &mut Vars, path: &str, id: &str, manifest: &Value, by: &str) {
        let path = path.trim_end_matches('/');
        let path = if path.is_empty() { "/" } else { path };
        let set = |vars: &mut Vars, name: &str, value: String| {
            vars.insert(name.to_string(), Value::String(value));
        };
        set(vars, var::PATH, path.to_string());
        set(vars, var::ID, id.to_string());
        set(vars, var::DIR, format!("{path}/releases/{id}"));
        set(
            vars,
            var::MANIFEST,
            serde_json::to_string(manifest).unwrap_or_default(),
        );
        set(vars, var::BY, by.replace(['\n', '\r'], " "));
        set(vars, var::BEFORE, String::new());
        vars.entry(var::EXPECT)
            .or_insert_with(|| Value::String(String::new()));
        vars.entry(var::RELEASE)
            .or_insert_with(|| Value::String(id.to_string()));
    }
}

/// Into the release path (created first when `create`).
fn enter(create: bool) -> String {
    let path = format!("{{{{ {} }}}}", var::PATH);
    if create {
        format!("mkdir -p -- {path} && cd -- {path} || exit 1")
    } else {
        format!("cd -- {path} || exit 1")
    }
}

/// Links `shared/PATH` into the release at `PATH`; a directory is created
/// in `shared/` when missing, a file must be there already.
fn link_shared(shared: &str) -> String {
    let directory = shared.ends_with('/');
    let name = shared.trim_end_matches('/');
    let quoted = crate::shell::quote(name);
    let ensure = if directory {
        format!("mkdir -p -- shared/{quoted} || exit 1\n")
    } else {
        format!(
            "[ -e shared/{quoted} ] || {{ echo \"$PWD/shared/\"{quoted}\" does not exist: it is linked into every release, put it there first\" >&2; exit 1; }}\n"
        )
    };
    format!(
        "{ensure}rm -rf -- \"releases/$id/\"{quoted} && mkdir -p -- \"$(dirname -- \"releases/$id/\"{quoted})\" \
         && ln -sfn -- \"$PWD/shared/\"{quoted} \"releases/$id/\"{quoted} || exit 1\n"
    )
}

/// Switches `current` to `releases/$id` with a rename over it, after
/// recording the switch; sets `old` (what it was) and `previous` (the
/// release named previous from now on).
fn switch_current(command: &str) -> String {
    format!(
        "old=$(readlink current 2>/dev/null) || old=\n\
         case $old in releases/*) previous=${{old#releases/}} ;; \"$PWD\"/releases/*) previous=${{old#\"$PWD\"/releases/}} ;; *) previous= ;; esac\n\
         if [ \"$old\" = \"releases/$id\" ] && [ -f {SWITCH_RECORD} ]; then previous=$(sed -n 's/^previous //p' {SWITCH_RECORD}); fi\n\
         if [ -f {SWITCH_RECORD} ]; then cp -f {SWITCH_RECORD} {SWITCH_RECORD}.before || exit 1; else rm -f {SWITCH_RECORD}.before; fi\n\
         ln -sfn -- \"releases/$id\" .current.herd-$$ && mv -f -T .current.herd-$$ current || {{ rm -f .current.herd-$$; exit 1; }}\n\
         printf 'current %s\\nprevious %s\\nat %s\\nby %s\\ncommand {command}\\n' \"$id\" \"$previous\" \"$(date -u +%Y-%m-%dT%H:%M:%SZ)\" {{{{ {by} }}}} > {SWITCH_RECORD}.tmp \
         && mv -f {SWITCH_RECORD}.tmp {SWITCH_RECORD} || exit 1\n",
        by = var::BY,
    )
}

#[cfg(test)]
mod tests;
