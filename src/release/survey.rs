//! What a host holds of its releases: read with one command, changing
//! nothing. `herd releases` shows it; `herd rollback` checks it on every
//! host before it touches any.

use serde::Serialize;

use super::{MANIFEST, SWITCH_RECORD};
use crate::shell::{quote, wrap};

/// One release directory on a host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Kept {
    pub id: String,
    /// When it was last deployed (its manifest's mtime), seconds since the epoch.
    pub time: u64,
    /// herd made it (it has a manifest): only those are ever pruned.
    pub herd: bool,
}

/// A host's releases, as its files say.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HostReleases {
    /// The release path exists.
    pub exists: bool,
    /// The release `current` points to, when it points into `releases/`.
    pub current: Option<String>,
    /// What `current` points to, as written.
    pub current_link: Option<String>,
    /// What `current` named before the last switch, when herd's record of
    /// that switch still matches `current`.
    pub previous: Option<String>,
    /// Newest first.
    pub releases: Vec<Kept>,
    /// When and by whom `current` was last switched, and with which command.
    pub switched_at: Option<String>,
    pub switched_by: Option<String>,
    pub switched_with: Option<String>,
    /// `current` was changed since herd's last switch (by hand, say): the
    /// previous release is unknown.
    pub switched_elsewhere: bool,
}

/// The command that prints what [`parse`] reads, for the release path `path`.
pub fn script(path: &str, become_: bool, become_user: Option<&str>) -> String {
    let body = format!(
        "[ -e {path} ] || {{ echo absent; exit 0; }}\n\
         cd -- {path} || exit 1\n\
         printf 'current\\t%s\\n' \"$(readlink current 2>/dev/null)\"\n\
         [ -f {SWITCH_RECORD} ] && sed 's/^/switch\\t/' {SWITCH_RECORD}\n\
         for d in releases/*/; do\n  \
           [ -d \"$d\" ] || continue; d=${{d%/}}\n  \
           if [ -f \"$d/{MANIFEST}\" ]; then t=$(stat -c %Y -- \"$d/{MANIFEST}\"); m=1; else t=$(stat -c %Y -- \"$d\"); m=0; fi\n  \
           printf 'release\\t%s\\t%s\\t%s\\n' \"$t\" \"$m\" \"${{d#releases/}}\"\n\
         done\n\
         exit 0",
        path = quote(path),
    );
    wrap(&body, become_, become_user)
}

/// Reads the output of [`script`].
pub fn parse(output: &str) -> HostReleases {
    let mut found = HostReleases {
        exists: true,
        ..HostReleases::default()
    };
    let mut record_current = None;
    let mut record_previous = None;
    for line in output.lines() {
        let mut fields = line.splitn(2, '\t');
        let (Some(kind), rest) = (fields.next(), fields.next().unwrap_or("")) else {
            continue;
        };
        match kind {
            "absent" => found.exists = false,
            "current" if !rest.is_empty() => {
                found.current_link = Some(rest.to_string());
                found.current = release_of(rest);
            }
            "switch" => {
                let (key, value) = rest.split_once(' ').unwrap_or((rest, ""));
                let value = (!value.is_empty()).then(|| value.to_string());
                match key {
                    "current" => record_current = value,
                    "previous" => record_previous = value,
                    "at" => found.switched_at = value,
                    "by" => found.switched_by = value,
                    "command" => found.switched_with = value,
                    _ => {}
                }
            }
            "release" => {
                let mut parts = rest.splitn(3, '\t');
                if let (Some(time), Some(herd), Some(id)) =
                    (parts.next(), parts.next(), parts.next())
                {
                    found.releases.push(Kept {
                        id: id.to_string(),
                        time: time.parse().unwrap_or(0),
                        herd: herd == "1",
                    });
                }
            }
            _ => {}
        }
    }
    found
        .releases
        .sort_by(|a, b| b.time.cmp(&a.time).then_with(|| b.id.cmp(&a.id)));
    if record_current.is_some() {
        if record_current == found.current {
            found.previous = record_previous;
        } else {
            found.switched_elsewhere = true;
        }
    }
    found
}

/// The release a link into `releases/` names (`releases/v2`, or an
/// absolute path ending in `/releases/v2`).
fn release_of(link: &str) -> Option<String> {
    let rest = link
        .strip_prefix("releases/")
        .or_else(|| link.rsplit_once("/releases/").map(|(_, rest)| rest))?;
    let id = rest.trim_end_matches('/');
    (!id.is_empty() && !id.contains('/')).then(|| id.to_string())
}

impl HostReleases {
    pub fn has(&self, id: &str) -> bool {
        self.releases.iter().any(|kept| kept.id == id)
    }

    /// The release `herd rollback` would switch this host to, or why there
    /// is none.
    pub fn rollback_target(&self) -> Result<String, String> {
        if !self.exists {
            return Err("the release path does not exist".into());
        }
        if self.switched_elsewhere {
            return Err(
                "current was switched outside herd since its last switch, so the previous release is unknown"
                    .into(),
            );
        }
        let previous = self
            .previous
            .clone()
            .ok_or_else(|| "no previous release is recorded".to_string())?;
        // The record is a file on the host: what it names is checked as any id.
        super::check_id(&previous)
            .map_err(|why| format!("its switch record is not herd's: {why}"))?;
        Ok(previous)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_current_the_previous_and_the_releases_newest_first() {
        let output = "current\treleases/v3\nswitch\tcurrent v3\nswitch\tprevious v2\n\
                      switch\tat 2026-11-30T02:00:00Z\nswitch\tby ci@runner\nswitch\tcommand run\n\
                      release\t100\t0\tv1\nrelease\t300\t1\tv3\nrelease\t200\t1\tv2\n";
        let found = parse(output);
        assert_eq!(found.current.as_deref(), Some("v3"));
        assert_eq!(found.previous.as_deref(), Some("v2"));
        assert_eq!(found.switched_by.as_deref(), Some("ci@runner"));
        let ids: Vec<&str> = found.releases.iter().map(|k| k.id.as_str()).collect();
        assert_eq!(ids, ["v3", "v2", "v1"]);
        assert!(!found.releases[2].herd);
        assert_eq!(found.rollback_target(), Ok("v2".to_string()));
    }

    #[test]
    fn a_current_switched_by_hand_leaves_the_previous_unknown() {
        let found =
            parse("current\t/srv/app/releases/v1\nswitch\tcurrent v3\nswitch\tprevious v2\n");
        assert_eq!(found.current.as_deref(), Some("v1"));
        assert_eq!(found.previous, None);
        assert!(found.switched_elsewhere);
        assert!(found
            .rollback_target()
            .unwrap_err()
            .contains("outside herd"));
    }

    #[test]
    fn a_tampered_record_names_no_rollback_target() {
        let found = parse("current\treleases/v3\nswitch\tcurrent v3\nswitch\tprevious ../../etc\n");
        let refused = found.rollback_target().unwrap_err();
        assert!(
            refused.starts_with("its switch record is not herd's: release id `../../etc`"),
            "{refused}"
        );
    }

    #[test]
    fn a_host_without_the_path_has_nothing() {
        let found = parse("absent\n");
        assert!(!found.exists);
        assert_eq!(
            found.rollback_target(),
            Err("the release path does not exist".to_string())
        );
    }

    #[test]
    fn a_link_outside_releases_names_no_release() {
        let found = parse("current\t/opt/app\n");
        assert_eq!(found.current, None);
        assert_eq!(found.current_link.as_deref(), Some("/opt/app"));
    }
}
