//! Values interpolated into shell commands are shell-quoted: an inventory
//! variable or an `-e` value reaches the shell as data, never as code (unless
//! the playbook says `| raw`).

mod common;

use std::fs;
use std::path::PathBuf;

use common::{unique, Lab, Run};

/// A file in /tmp (where the lab's login user may write) that exists only if
/// the injected command ran; removed when dropped.
struct Canary(PathBuf);

impl Canary {
    fn new(tag: &str) -> Canary {
        let canary = Canary(PathBuf::from(format!("/tmp/{}", unique(tag))));
        assert!(!canary.0.exists());
        canary
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }

    fn exists(&self) -> bool {
        self.0.exists()
    }
}

impl Drop for Canary {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

/// Adds `line` under the lab inventory's `all: vars:`, by editing the text.
fn add_all_var(lab: &Lab, line: &str) {
    let text = fs::read_to_string(lab.inventory()).unwrap();
    assert!(
        text.contains("all:\n  vars:\n"),
        "unexpected lab inventory:\n{text}"
    );
    let text = text.replacen(
        "all:\n  vars:\n",
        &format!("all:\n  vars:\n    {line}\n"),
        1,
    );
    fs::write(lab.inventory(), text).unwrap();
}

/// stdout of every `step_finished` event of the run, per host.
fn step_outputs(run: &Run) -> Vec<(String, String)> {
    run.json_events()
        .into_iter()
        .filter(|e| e["event"] == "step_finished")
        .map(|e| {
            (
                e["host"].as_str().unwrap().to_string(),
                e["stdout"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

const ECHO_EVIL: &str = "\
name: Echo a variable
hosts: web
steps:
  - name: Echo it
    run: echo {{ evil }}
";

#[test]
fn an_inventory_variable_reaches_the_shell_as_data() {
    let lab = Lab::up(2);
    let canary = Canary::new("herd-inject");
    let payload = format!("; touch {}", canary.path());
    add_all_var(&lab, &format!("evil: \"{payload}\""));
    let playbook = lab.write("echo.yml", ECHO_EVIL);

    let run = lab
        .herd(["run"])
        .arg(&playbook)
        .args(["--output", "json"])
        .run();

    run.assert_code(0);
    assert!(
        !canary.exists(),
        "the inventory variable ran as shell code\n{run}"
    );
    assert_both_hosts_echoed(&run, &payload);
}

#[test]
fn the_same_variable_marked_raw_does_reach_the_shell_as_code() {
    // The control for the test above: proves the canary would have caught an
    // injection, and that `| raw` is the documented way out of quoting.
    let lab = Lab::up(1);
    let canary = Canary::new("herd-inject-raw");
    add_all_var(&lab, &format!("evil: \"; touch {}\"", canary.path()));
    let playbook = lab.write(
        "echo.yml",
        &ECHO_EVIL.replace("{{ evil }}", "{{ evil | raw }}"),
    );

    let run = lab.herd(["run"]).arg(&playbook).run();

    run.assert_code(0);
    assert!(canary.exists(), "`| raw` value did not run as shell\n{run}");
}

#[test]
fn an_extra_var_with_command_substitution_reaches_the_shell_as_data() {
    let lab = Lab::up(2);
    let canary = Canary::new("herd-inject-e");
    let payload = format!("$(touch {})`touch {}`", canary.path(), canary.path());
    let playbook = lab.write("echo.yml", &ECHO_EVIL.replace("evil", "payload"));

    let run = lab
        .herd(["run"])
        .arg(&playbook)
        .args(["-e", &format!("payload={payload}"), "--output", "json"])
        .run();

    run.assert_code(0);
    assert!(!canary.exists(), "the -e value ran as shell code\n{run}");
    assert_both_hosts_echoed(&run, &payload);
}

/// Both hosts' step printed exactly `payload`: it reached the shell as data.
fn assert_both_hosts_echoed(run: &Run, payload: &str) {
    let outputs = step_outputs(run);
    assert_eq!(outputs.len(), 2, "{run}");
    for (host, stdout) in outputs {
        assert_eq!(
            stdout.trim_end(),
            payload,
            "{host} echoed something else\n{run}"
        );
    }
}
