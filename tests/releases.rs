//! `release:` on the real lab: the layout herd builds, pruning to `keep`,
//! the switch undone on a host that fails, `herd rollback` proven by what
//! each host serves, its refusal before any change, and `herd releases`.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::{healthz, Lab, Run};

/// A release playbook for the lab: builds the release from the running
/// one, ships the settings into shared/, proves the release over HTTP.
/// `STEP` is an extra step (or nothing).
const PLAYBOOK: &str = "\
name: Release
hosts: web
vars:
  release: v2
release:
  path: \"{{ app_dir }}\"
  id: \"{{ release }}\"
  keep: KEEP
  shared: [settings.ini, media/]
rolling: { batch: 100%, max_fail: 0 }
hooks: { on_success: 'echo \"$HERD_COMMAND $HERD_OUTCOME $HERD_HOSTS\" >> hooks.log' }
steps:
  - name: Build
    run: cp ../../current/app.py app.py && printf '%s\\n' {{ release }} > RELEASE
  - name: Ship the settings
    upload: { src: settings.ini, dest: \"{{ app_dir }}/shared/settings.ini\" }
STEP
reload:
  pidfile: \"{{ gunicorn_pidfile }}\"
validate:
  timeout: 20s
  settle: 0s
  http: { url: \"http://{{ ansible_host }}:{{ http_port }}/healthz\", contains: \"{{ release }}\" }
";

fn playbook(lab: &Lab, keep: u32, step: &str) -> PathBuf {
    lab.write("settings.ini", "[app]\ncolour = blue\n");
    lab.write(
        "release.yml",
        &PLAYBOOK
            .replace("KEEP", &keep.to_string())
            .replace("STEP\n", step),
    )
}

fn deploy(lab: &Lab, playbook: &Path, release: &str, more: &[&str]) -> Run {
    lab.herd(["run"])
        .arg(playbook)
        .args(["-e", &format!("release={release}")])
        .args(more)
        .run()
}

fn current(app: &Path) -> String {
    fs::read_link(app.join("current"))
        .map(|link| link.display().to_string())
        .unwrap_or_else(|e| format!("<{e}>"))
}

fn releases(app: &Path) -> Vec<String> {
    let mut found: Vec<String> = fs::read_dir(app.join("releases"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    found.sort();
    found
}

/// The Gunicorn master's workers on `host`.
fn workers(host: &common::LabHost) -> Vec<u32> {
    common::read_pid(&host.pidfile).map_or_else(Vec::new, common::children)
}

fn record(app: &Path) -> String {
    fs::read_to_string(app.join(".herd-switch")).unwrap_or_default()
}

#[test]
fn a_release_deploy_builds_the_layout_and_prunes_to_keep() {
    let lab = Lab::up(2);
    let playbook = playbook(&lab, 1, "");

    for release in ["v2", "v3", "v4"] {
        let run = lab
            .herd(["run"])
            .arg(&playbook)
            .args(["-e", &format!("release={release}")])
            .args(["-e", "api_token=hunter2-token"])
            .args(["-e", "herd_secret_vars=api_token"])
            .env("GITHUB_SHA", format!("c0ffee-{release}"))
            .run();
        run.assert_code(0);
        for host in lab.hosts() {
            assert_eq!(
                healthz(host),
                format!("ok {release}"),
                "{}\n{run}",
                host.name
            );
            assert_eq!(current(&host.app_dir), format!("releases/{release}"));
        }
    }

    for host in lab.hosts() {
        let app = &host.app_dir;
        // keep: 1 keeps v4, and v3 as the previous release even though it
        // is past `keep`; v1 was not made by herd, so it is never pruned.
        assert_eq!(releases(app), ["v1", "v3", "v4"], "{}", host.name);
        let record = record(app);
        assert!(
            record.starts_with("current v4\nprevious v3\nat "),
            "{record}"
        );
        assert!(record.ends_with("command run\n"), "{record}");
        for shared in ["settings.ini", "media"] {
            let link = fs::read_link(app.join("releases/v4").join(shared)).unwrap();
            assert_eq!(link, app.join("shared").join(shared), "{shared}");
        }
        assert!(app.join("shared/media").is_dir());
        assert_eq!(
            fs::read_to_string(app.join("current/settings.ini")).unwrap(),
            "[app]\ncolour = blue\n"
        );
        let manifest = fs::read_to_string(app.join("releases/v4/.herd-release.json")).unwrap();
        let manifest: serde_json::Value = serde_json::from_str(&manifest).unwrap();
        assert_eq!(manifest["id"], "v4");
        assert_eq!(manifest["extra_vars"]["release"], "v4");
        assert_eq!(manifest["commit"], "c0ffee-v4", "{manifest}");
        assert!(manifest["playbook"]
            .as_str()
            .unwrap()
            .ends_with("release.yml"));
        let text = manifest.to_string();
        assert!(
            !text.contains("hunter2"),
            "a secret in the manifest: {text}"
        );
        assert!(manifest["extra_vars"].get("api_token").is_none(), "{text}");
    }

    let shown = lab.herd(["releases"]).arg(&playbook).run();
    shown.assert_code(0);
    for host in lab.hosts() {
        let row = shown
            .stdout()
            .lines()
            .find(|line| line.starts_with(&format!("{} ", host.name)))
            .unwrap_or_else(|| panic!("no row for {}\n{shown}", host.name));
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cells[1..4], ["v4", "v3", "3"], "{row}");
        assert!(row.ends_with("(run)"), "{row}");
    }
    assert!(
        shown.stdout().contains("all 2 host(s) read are on v4"),
        "{shown}"
    );
}

#[test]
fn herd_rollback_brings_every_host_back_proven_by_what_it_serves() {
    let lab = Lab::up(3);
    let playbook = playbook(&lab, 5, "");
    deploy(&lab, &playbook, "v2", &[]).assert_code(0);
    deploy(&lab, &playbook, "v3", &[]).assert_code(0);
    let masters: Vec<Option<u32>> = lab
        .hosts()
        .iter()
        .map(|h| common::read_pid(&h.pidfile))
        .collect();

    let back = lab
        .herd(["rollback"])
        .arg(&playbook)
        .args(["--output", "json"])
        .run();

    back.assert_code(0);
    for (host, master) in lab.hosts().iter().zip(masters) {
        assert_eq!(healthz(host), "ok v2", "{}\n{back}", host.name);
        assert_eq!(current(&host.app_dir), "releases/v2");
        assert!(record(&host.app_dir).starts_with("current v2\nprevious v3\n"));
        assert!(record(&host.app_dir).ends_with("command rollback\n"));
        // A reload, not a restart.
        assert_eq!(common::read_pid(&host.pidfile), master, "{}", host.name);
        // v3 stays: it is now the previous release.
        assert_eq!(releases(&host.app_dir), ["v1", "v2", "v3"]);
        let audit = fs::read_to_string(lab.audit_log(&host.name)).unwrap();
        let last: serde_json::Value = serde_json::from_str(audit.lines().last().unwrap()).unwrap();
        assert_eq!(last["command"], "rollback");
        assert_eq!(last["release"], "v2");
        assert_eq!(last["result"], "done");
    }
    // The playbook's own check proved it: `contains` rendered with the target.
    let validated = back
        .json_events()
        .into_iter()
        .filter(|e| e["event"] == "reload_finished")
        .count();
    assert_eq!(validated, 3, "{back}");

    let hooks = fs::read_to_string(lab.dir().join("hooks.log")).unwrap();
    assert_eq!(
        hooks.lines().last(),
        Some("rollback ok host01 host02 host03"),
        "{hooks}"
    );

    // A second rollback would go back to the release the first one left:
    // herd wants that named.
    let again = lab.herd(["rollback"]).arg(&playbook).run();
    again.assert_code(1);
    assert!(
        again.stderr().contains(
            "  host01: its last switch was a rollback (from v3): another would go back there\n"
        ),
        "{again}"
    );
    lab.herd(["rollback"])
        .arg(&playbook)
        .args(["--to", "v3"])
        .run()
        .assert_code(0);
    for host in lab.hosts() {
        assert_eq!(healthz(host), "ok v3", "{}", host.name);
    }
}

#[test]
fn rollback_to_a_release_some_hosts_lack_changes_nothing() {
    let lab = Lab::up(3);
    let playbook = playbook(&lab, 5, "");
    deploy(&lab, &playbook, "v2", &[]).assert_code(0);
    deploy(&lab, &playbook, "v3", &["-l", "host01"]).assert_code(0);
    let before: Vec<(String, String, Vec<u32>)> = lab
        .hosts()
        .iter()
        .map(|h| (current(&h.app_dir), record(&h.app_dir), workers(h)))
        .collect();
    let audit_lines = |lab: &Lab| -> Vec<usize> {
        lab.hosts()
            .iter()
            .map(|h| {
                fs::read_to_string(lab.audit_log(&h.name))
                    .unwrap_or_default()
                    .lines()
                    .count()
            })
            .collect()
    };
    let audited = audit_lines(&lab);

    let refused = lab
        .herd(["rollback"])
        .arg(&playbook)
        .args(["--to", "v3"])
        .run();

    refused.assert_code(1);
    assert!(
        refused.stderr().contains(
            "cannot roll back to v3: 2 host(s) cannot go there, so no host was touched:\n  \
             host02: has no release v3\n  host03: has no release v3\n"
        ),
        "{refused}"
    );
    // The previous releases differ too (v2 on host01, v1 elsewhere).
    let differ = lab.herd(["rollback"]).arg(&playbook).run();
    differ.assert_code(1);
    assert!(
        differ.stderr().contains(
            "the hosts' previous releases differ, so no host was touched:\n  v1: host02, host03\n  v2: host01\n"
        ),
        "{differ}"
    );
    let after: Vec<(String, String, Vec<u32>)> = lab
        .hosts()
        .iter()
        .map(|h| (current(&h.app_dir), record(&h.app_dir), workers(h)))
        .collect();
    assert_eq!(after, before, "a refused rollback changed a host");
    assert_eq!(
        audit_lines(&lab),
        audited,
        "a refused rollback wrote the audit log"
    );
    assert_eq!(healthz(lab.host("host01")), "ok v3");

    let shown = lab
        .herd(["releases"])
        .arg(&playbook)
        .args(["--output", "json"])
        .run();
    shown.assert_code(0);
    let json: serde_json::Value = serde_json::from_str(shown.stdout()).unwrap();
    assert_eq!(json["drift"], true, "{shown}");
    assert_eq!(json["current"]["v3"], serde_json::json!(["host01"]));
    assert_eq!(
        json["current"]["v2"],
        serde_json::json!(["host02", "host03"])
    );
    let human = lab.herd(["releases"]).arg(&playbook).run();
    assert!(
        human.stdout().contains(
            "DRIFT: the fleet is on 2 releases: v2 on 2 (host02, host03); v3 on 1 (host01)"
        ),
        "{human}"
    );
}

#[test]
fn a_host_that_fails_after_the_switch_goes_back_to_its_release() {
    let lab = Lab::up(2);
    let good = playbook(&lab, 5, "");
    deploy(&lab, &good, "v2", &[]).assert_code(0);
    // On host02 the release serves the wrong text, so its proof fails
    // after `current` was switched.
    let bad = lab.write(
        "bad.yml",
        &PLAYBOOK.replace("KEEP", "5").replace(
            "STEP\n",
            "  - name: Break host02\n    run: test {{ inventory_hostname }} != host02 || echo broken > RELEASE\n",
        ),
    );

    let run = deploy(&lab, &bad, "v3", &[]);

    run.assert_code(1);
    assert_eq!(run.summary_result("host01"), "done", "{run}");
    assert_eq!(run.summary_result("host02"), "rolled back", "{run}");
    let host02 = lab.host("host02");
    assert_eq!(current(&host02.app_dir), "releases/v2", "{run}");
    assert_eq!(healthz(host02), "ok v2", "{run}");
    // The record is as before; the release stays, as the server ran in it.
    assert_eq!(releases(&host02.app_dir), ["v1", "v2", "v3"], "{run}");
    assert!(record(&host02.app_dir).starts_with("current v2\nprevious v1\n"));
    assert_eq!(healthz(lab.host("host01")), "ok v3");
}

#[test]
fn a_failed_step_leaves_current_alone_and_removes_the_new_release() {
    let lab = Lab::up(1);
    let playbook = playbook(&lab, 5, "  - name: Fail\n    run: exit 3\n");

    let run = deploy(&lab, &playbook, "v2", &[]);

    run.assert_code(1);
    let host = &lab.hosts()[0];
    assert_eq!(run.summary_result(&host.name), "rolled back", "{run}");
    assert_eq!(current(&host.app_dir), "releases/v1");
    assert_eq!(releases(&host.app_dir), ["v1"], "{run}");
    assert_eq!(healthz(host), "ok v1");
}

#[test]
fn a_hostile_release_id_is_refused_before_any_host() {
    let lab = Lab::up(1);
    let playbook = playbook(&lab, 5, "");
    for hostile in ["../../../tmp/x", "$(touch /tmp/herd-pwned)", ".."] {
        let run = deploy(&lab, &playbook, hostile, &[]);
        run.assert_code(2);
        assert!(
            run.stderr().contains("is not a safe file name"),
            "{hostile}\n{run}"
        );
        assert!(
            run.stderr().contains("release.yml:7:"),
            "the error points at release.id\n{run}"
        );
    }
    let to = lab
        .herd(["rollback"])
        .arg(&playbook)
        .args(["--to", "../v1"])
        .run();
    to.assert_code(2);
    assert!(to.stderr().contains("--to: release id `../v1`"), "{to}");
    assert_eq!(current(&lab.hosts()[0].app_dir), "releases/v1");
    assert!(!Path::new("/tmp/herd-pwned").exists());
}

#[test]
fn ctrl_c_during_the_steps_leaves_current_and_removes_the_half_built_release() {
    let lab = Lab::up(1);
    let playbook = playbook(&lab, 5, "  - name: Nap\n    run: sleep 2\n");
    let host = &lab.hosts()[0];
    let running = lab
        .herd(["run"])
        .arg(&playbook)
        .args(["-e", "release=v2"])
        .spawn();
    assert!(
        common::wait_until(std::time::Duration::from_secs(20), || host
            .app_dir
            .join("releases/v2/RELEASE")
            .exists()),
        "the release was never built"
    );

    running.signal(libc::SIGINT);
    let run = running.wait();

    run.assert_code(130);
    assert_eq!(current(&host.app_dir), "releases/v1", "{run}");
    assert_eq!(releases(&host.app_dir), ["v1"], "{run}");
    assert!(
        run.stderr()
            .contains("rollback [1/1] release: restore current: ok"),
        "{run}"
    );
    assert_eq!(healthz(host), "ok v1");
}

#[test]
fn the_running_and_the_previous_release_are_never_built_over() {
    let lab = Lab::up(1);
    let playbook = playbook(&lab, 5, "");
    let host = &lab.hosts()[0];
    deploy(&lab, &playbook, "v2", &[]).assert_code(0);
    deploy(&lab, &playbook, "v3", &[]).assert_code(0);
    let manifest = |id: &str| {
        fs::read_to_string(
            host.app_dir
                .join("releases")
                .join(id)
                .join(".herd-release.json"),
        )
        .unwrap()
    };
    let (v2, v3) = (manifest("v2"), manifest("v3"));

    for (id, said) in [
        ("v3", "v3 is the release current serves here: herd does not build over a running release"),
        ("v2", "v2 is the previous release here, the one herd rollback goes back to: herd does not rebuild it"),
    ] {
        let run = deploy(&lab, &playbook, id, &[]);
        run.assert_code(1);
        assert!(run.stderr().contains(said), "{run}");
        assert_eq!(current(&host.app_dir), "releases/v3", "{run}");
    }
    assert_eq!(manifest("v2"), v2, "the previous release was touched");
    assert_eq!(manifest("v3"), v3, "the running release was touched");
    assert_eq!(healthz(host), "ok v3");
    assert!(record(&host.app_dir).starts_with("current v3\nprevious v2\n"));

    // Any other release of that name is rebuilt from nothing.
    fs::write(host.app_dir.join("releases/v1/stale"), "old").unwrap();
    common::chown_to(lab.user(), &host.app_dir.join("releases/v1/stale"));
    let mut v1 = lab
        .herd(["run"])
        .arg(&playbook)
        .args(["-e", "release=v1"])
        .run();
    v1.assert_code(0);
    assert!(!host.app_dir.join("releases/v1/stale").exists(), "{v1}");
    assert_eq!(healthz(host), "ok v1");
    v1 = lab.herd(["releases"]).arg(&playbook).run();
    assert!(v1.stdout().contains("host01  v1       v3"), "{v1}");
}

#[test]
fn a_failed_deploy_never_prunes_the_release_a_rollback_needs() {
    let lab = Lab::up(1);
    let good = playbook(&lab, 1, "");
    let host = &lab.hosts()[0];
    deploy(&lab, &good, "v2", &[]).assert_code(0);
    deploy(&lab, &good, "v3", &[]).assert_code(0);
    assert_eq!(releases(&host.app_dir), ["v1", "v2", "v3"]);
    // v4 is switched to and fails its proof: nothing is pruned, v2 stays
    // the previous release.
    let bad = lab.write(
        "bad.yml",
        &PLAYBOOK.replace("KEEP", "1").replace(
            "STEP\n",
            "  - name: Break\n    run: echo broken > RELEASE\n",
        ),
    );
    let run = deploy(&lab, &bad, "v4", &[]);
    run.assert_code(1);
    assert_eq!(run.summary_result("host01"), "rolled back", "{run}");
    assert_eq!(releases(&host.app_dir), ["v1", "v2", "v3", "v4"], "{run}");
    assert!(record(&host.app_dir).starts_with("current v3\nprevious v2\n"));

    let back = lab.herd(["rollback"]).arg(&good).run();
    back.assert_code(0);
    assert_eq!(healthz(host), "ok v2", "{back}");
}

#[test]
fn a_rollback_that_waited_for_a_deploy_switches_nothing_that_changed() {
    let lab = Lab::up(1);
    let playbook = playbook(&lab, 5, "  - name: Nap\n    run: sleep 3\n");
    let host = &lab.hosts()[0];
    deploy(&lab, &playbook, "v2", &[]).assert_code(0);
    deploy(&lab, &playbook, "v3", &[]).assert_code(0);
    let deploying = lab
        .herd(["run"])
        .arg(&playbook)
        .args(["-e", "release=v4"])
        .spawn();
    assert!(
        common::wait_until(std::time::Duration::from_secs(20), || host
            .app_dir
            .join("releases/v4/RELEASE")
            .exists()),
        "v4 was never built"
    );

    // Read while v3 runs; by the time the lock is free, v4 does.
    let back = lab
        .herd(["rollback"])
        .arg(&playbook)
        .args(["--lock-wait", "30s"])
        .run();
    deploying.wait().assert_code(0);

    back.assert_code(1);
    assert!(
        back.stderr().contains(
            "current changed since herd rollback read it (it named releases/v3, now releases/v4)"
        ),
        "{back}"
    );
    assert_eq!(current(&host.app_dir), "releases/v4");
    assert_eq!(healthz(host), "ok v4");
}
