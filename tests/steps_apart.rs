//! A host's steps run one after another over one connection, each on its
//! own: what a step does to its shell (directory, variables, options) does
//! not reach the next, a step reads nothing from herd, and a step that kills
//! the shell it runs in fails alone while the steps after it still run.

mod common;

use std::fs;

use common::Lab;

const PLAYBOOK: &str = "\
name: Steps stay apart
hosts: web
steps:
  - name: Change the shell
    run: cd / && export HERD_LEAK=yes && set -u && umask 077
  - name: Read stdin
    run: cat > {{ app_dir }}/stdin-read; echo done > {{ app_dir }}/stdin-done
    timeout: 10s
  - name: Look
    run: printf '%s|%s\\n' \"$(pwd)\" \"${HERD_LEAK:-unset}\" > {{ app_dir }}/look
  - name: Kill the shell
    run: kill -9 $$; sleep 1
    ignore_errors: true
  - name: After
    run: echo after > {{ app_dir }}/after
";

#[test]
fn each_step_starts_from_a_clean_shell_and_a_killed_shell_fails_only_its_step() {
    let lab = Lab::up(2);
    let playbook = lab.write("apart.yml", PLAYBOOK);

    let run = lab
        .herd(["run"])
        .arg(&playbook)
        .args(["--output", "json"])
        .run();

    run.assert_code(0);
    for host in lab.hosts() {
        let app = &host.app_dir;
        let look = fs::read_to_string(app.join("look")).unwrap_or_else(|e| panic!("{e}\n{run}"));
        let (dir, leak) = look.trim_end().split_once('|').expect("two fields");
        assert_ne!(dir, "/", "{}: the cd of step 1 reached step 3", host.name);
        assert_eq!(
            leak, "unset",
            "{}: the export of step 1 reached step 3",
            host.name
        );
        // `cat` saw end of input at once instead of waiting out its timeout.
        assert_eq!(fs::read_to_string(app.join("stdin-read")).unwrap(), "");
        assert!(app.join("stdin-done").exists(), "{}", host.name);
        assert!(
            app.join("after").exists(),
            "{}: the step after the killed shell did not run\n{run}",
            host.name
        );
    }
    let killed: Vec<serde_json::Value> = run
        .json_events()
        .into_iter()
        .filter(|e| e["event"] == "step_finished" && e["name"] == "Kill the shell")
        .collect();
    assert_eq!(killed.len(), 2, "{run}");
    for event in killed {
        assert_eq!(event["ok"], false, "{event}");
        assert_eq!(event["ignored"], true, "{event}");
        assert!(
            event["stderr"]
                .as_str()
                .is_some_and(|s| s.contains("shell on the host ended")),
            "{event}"
        );
    }
}
