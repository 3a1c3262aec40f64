//! Which CI herd runs in, and what its CI reporters share: where one
//! batch's part of the log ends. The CI reporters write their markers to
//! stderr, where the log lines go, and run before the main reporter, so a
//! batch's group opens before its first line.

use crate::event::Event;

/// A CI whose log conventions herd follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ci {
    /// GitHub Actions: annotations, groups, the job summary.
    Github,
    /// GitLab CI: collapsible sections.
    Gitlab,
}

impl Ci {
    /// The CI the environment says herd runs in (`var` reads a variable):
    /// GitHub Actions sets `GITHUB_ACTIONS=true`, GitLab CI `GITLAB_CI=true`.
    pub fn detect(var: impl Fn(&str) -> Option<String>) -> Option<Ci> {
        if var("GITHUB_ACTIONS").as_deref() == Some("true") {
            Some(Ci::Github)
        } else if var("GITLAB_CI").as_deref() == Some("true") {
            Some(Ci::Gitlab)
        } else {
            None
        }
    }
}

/// True for an event that is no longer part of the batch under way: the
/// next batch, the rollout's end, or the work after the last batch (giving
/// the locks back, the final hooks). A batch's `after_batch` hook is still
/// part of it.
pub fn ends_batch(event: &Event) -> bool {
    matches!(
        event,
        Event::BatchStarted { .. }
            | Event::RolloutAborted { .. }
            | Event::RunFinished { .. }
            | Event::LockLeft { .. }
            | Event::HookStarted { batch: None, .. }
    )
}

/// The header of a batch's group or section: `batch 2/4: host03 host04`,
/// without control characters (a host name cannot end the line early).
pub fn batch_header(batch: usize, of: usize, hosts: &[String]) -> String {
    crate::shell::one_line(&format!("batch {batch}/{of}: {}", hosts.join(" ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| value.to_string())
        }
    }

    #[test]
    fn the_ci_is_told_by_its_own_variable_set_to_true() {
        assert_eq!(
            Ci::detect(env(&[("GITHUB_ACTIONS", "true")])),
            Some(Ci::Github)
        );
        assert_eq!(Ci::detect(env(&[("GITLAB_CI", "true")])), Some(Ci::Gitlab));
        assert_eq!(Ci::detect(env(&[("GITHUB_ACTIONS", "false")])), None);
        assert_eq!(Ci::detect(env(&[("GITLAB_CI", "1")])), None);
        assert_eq!(Ci::detect(env(&[("CI", "true")])), None);
        assert_eq!(Ci::detect(env(&[])), None);
    }

    #[test]
    fn a_batch_header_keeps_to_one_line() {
        let hosts = vec!["web1".to_string(), "we\nb2".to_string()];
        assert_eq!(batch_header(1, 3, &hosts), "batch 1/3: web1 we b2");
    }
}
