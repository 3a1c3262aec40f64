//! Reloading through systemd, against the lab's real user manager: the
//! master is the unit's main process, each delivery (`kill`, `systemctl`,
//! `systemctl-kill`, `auto`) reaches it, the same proofs hold whatever sent
//! the signal, `auto` falls back to the pidfile's master when the unit is
//! not active, a least-privilege account whose only sudo right is
//! `systemctl --user reload UNIT` deploys and reloads, and a mixed fleet
//! rolls under load without a failed request.
//!
//! Every lab here has unit hosts, which only a lab started as root can have.

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::load::under_load;
use common::master::{assert_workers_replaced, generation};
use common::{
    healthz, one_at_a_time, read_pid, switch_release, wait_until, Herd, Lab, LabHost, Run,
    LAB_APP_ACCOUNT,
};

/// A lab of `hosts` with `units` unit hosts, the only lab of this file
/// while the guard lives; `None` (the test is skipped) unless root, since
/// only a lab started as root has unit hosts.
fn unit_lab(hosts: usize, units: usize) -> Option<(std::sync::MutexGuard<'static, ()>, Lab)> {
    if !common::running_as_root() {
        eprintln!("skipped: unit hosts need a lab started as root");
        return None;
    }
    let one = one_at_a_time();
    Some((one, Lab::up_with_units(hosts, units)))
}

/// A playbook that only reloads, through each host's unit, as the account
/// that runs its Gunicorn, and proves the release `{{ release }}` serves.
fn reload_playbook(lab: &Lab, delivery: &str, extra: &str) -> PathBuf {
    lab.write(
        &format!("reload-{delivery}.yml"),
        &format!(
            "hosts: web\nvars:\n  release: v1\n\
             reload:\n  unit: \"{{{{ app_unit }}}}\"\n  scope: user\n  become: true\n  become_user: \"{{{{ app_user }}}}\"\n  delivery: {delivery}\n{extra}\
             validate:\n  timeout: 30s\n  settle: 1s\n  \
             http: {{ url: \"http://{{{{ ansible_host }}}}:{{{{ http_port }}}}/healthz\", status: 200, contains: \"{{{{ release }}}}\" }}\n"
        ),
    )
}

/// The one `reload_finished` event of `host`.
fn reload_event(run: &Run, host: &str) -> serde_json::Value {
    let events: Vec<serde_json::Value> = run
        .json_events()
        .into_iter()
        .filter(|e| e["event"] == "reload_finished" && e["host"] == host)
        .collect();
    assert_eq!(events.len(), 1, "{host}: reload events {events:?}\n{run}");
    events[0].clone()
}

/// The pid systemd recorded for the unit's last `ExecReload` run, if any:
/// it changes exactly when systemd ran the reload command.
fn exec_reload_pid(lab: &Lab, host: &str) -> Option<u32> {
    let text = lab.unit_property(host, "ExecReload");
    text.split(';')
        .find_map(|field| field.trim().strip_prefix("pid="))
        .and_then(|pid| pid.trim().parse().ok())
}

/// Reloads `host` with `delivery` onto `release` and proves, on the host's
/// processes, that the unit's main process stayed and every worker was
/// replaced; returns the run.
fn reload_onto(lab: &Lab, host: &LabHost, delivery: &str, release: &str) -> Run {
    switch_release(lab, host, release);
    let before = generation(host);
    assert_eq!(
        before.master.pid,
        lab.main_pid(&host.name),
        "{}: the pidfile and systemd disagree on the master",
        host.name
    );
    let playbook = reload_playbook(lab, delivery, "");
    let run = lab
        .herd(["run"])
        .arg(&playbook)
        .args(["-l", &host.name, "-e", &format!("release={release}")])
        .args(["--output", "json"])
        .run();
    run.assert_code(0);
    assert_workers_replaced(host, &before, &run);
    assert_eq!(lab.main_pid(&host.name), before.master.pid, "{run}");
    assert_eq!(healthz(host), format!("ok {release}"), "{run}");
    let event = reload_event(&run, &host.name);
    assert_eq!(event["master_pid"], before.master.pid, "{run}");
    run
}

#[test]
fn every_delivery_reloads_the_units_main_process_and_the_same_proofs_hold() {
    let Some((_one, lab)) = unit_lab(3, 2) else {
        return;
    };
    let (with_reload, without) = (lab.host("host02"), lab.host("host03"));
    assert!(with_reload.unit_reload && !without.unit_reload);

    // `herd check` finds each unit's main process, as systemd names it.
    let check = lab
        .herd(["check"])
        .arg("--playbook")
        .arg(reload_playbook(&lab, "auto", ""))
        .args(["-l", "host02,host03"])
        .run();
    check.assert_code(0);
    for (host, via) in [(with_reload, "systemctl"), (without, "kill")] {
        let line = format!(
            "{}  yes        known     {}      no     {} (MainPID of {} (user manager), 2 workers, signal by {via})",
            host.name,
            lab.user(),
            lab.main_pid(&host.name),
            lab.unit(&host.name)
        );
        assert!(check.stdout().contains(&line), "wanted {line:?}\n{check}");
    }

    let cases = [
        (with_reload, "systemctl", "systemctl"),
        (with_reload, "systemctl-kill", "systemctl-kill"),
        (with_reload, "kill", "kill"),
        (with_reload, "auto", "systemctl"),
        (without, "systemctl-kill", "systemctl-kill"),
        (without, "kill", "kill"),
        (without, "auto", "kill"),
    ];
    for (round, (host, delivery, via)) in cases.into_iter().enumerate() {
        let ran_reload = exec_reload_pid(&lab, &host.name);
        let run = reload_onto(&lab, host, delivery, &format!("v{}", round + 2));
        let event = reload_event(&run, &host.name);
        assert_eq!(event["delivery"], via, "{delivery} on {}\n{run}", host.name);
        assert_eq!(event["signals"].as_array().map(Vec::len), Some(1), "{run}");
        assert_eq!(event["signals"][0]["signal"], "HUP", "{run}");
        assert_eq!(event["signals"][0]["via"], via, "{run}");
        assert_eq!(event["signals"][0]["delivery"], "sent", "{run}");
        // systemd ran ExecReload for `systemctl` only; the others signalled
        // the main process without it.
        let ran_now = exec_reload_pid(&lab, &host.name);
        assert_eq!(
            ran_now != ran_reload,
            via == "systemctl",
            "{delivery} on {}: ExecReload pid {ran_reload:?} -> {ran_now:?}\n{run}",
            host.name
        );
    }
}

/// The unit's `ExecStart`, as its file says.
fn exec_start(lab: &Lab, host: &str) -> String {
    let path = lab.unit_file(host);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    text.lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap_or_else(|| panic!("no ExecStart in {text}"))
        .to_string()
}

#[test]
fn auto_signals_the_pidfiles_master_with_kill_when_the_unit_is_not_active() {
    let Some((_one, lab)) = unit_lab(2, 1) else {
        return;
    };
    let host = lab.host("host02");
    let unit = lab.unit("host02");
    let stop = lab.user_systemctl(&["stop", unit]);
    assert!(stop.status.success(), "{stop:?}");
    // The same Gunicorn, started by hand as the app account, outside systemd.
    let by_hand = Command::new("runuser")
        .args(["-u", LAB_APP_ACCOUNT, "--", "/bin/sh", "-c"])
        .arg(format!("exec {} --daemon", exec_start(&lab, "host02")))
        .current_dir(&host.app_dir)
        .stdin(Stdio::null())
        .output()
        .expect("runuser runs");
    assert!(by_hand.status.success(), "{by_hand:?}");
    assert!(
        wait_until(Duration::from_secs(20), || read_pid(&host.pidfile)
            .is_some_and(common::alive)),
        "no Gunicorn started by hand"
    );
    assert_eq!(lab.unit_property("host02", "ActiveState"), "inactive");

    let playbook = reload_playbook(&lab, "auto", "  pidfile: \"{{ gunicorn_pidfile }}\"\n");
    switch_release(&lab, host, "v2");
    let before = generation(host);
    let run = lab
        .herd(["run"])
        .arg(&playbook)
        .args(["-l", "host02", "-e", "release=v2", "--output", "json"])
        .run();
    run.assert_code(0);
    let event = reload_event(&run, "host02");
    assert_eq!(event["delivery"], "kill", "{run}");
    assert_eq!(event["master_pid"], before.master.pid, "{run}");
    assert_workers_replaced(host, &before, &run);
    assert_eq!(healthz(host), "ok v2");
    // The unit stayed down: herd did not start it behind the operator's back.
    assert_eq!(lab.unit_property("host02", "ActiveState"), "inactive");
}

#[test]
fn an_account_allowed_only_systemctl_reload_deploys_and_reloads_end_to_end() {
    let Some((_one, lab)) = unit_lab(2, 1) else {
        return;
    };
    let host = lab.host("host02");
    let deploy = lab.deploy_user().expect("a unit lab has a deploy account");
    let inventory = lab.edited_inventory("deploy-inventory.yml", |text| {
        text.replace(
            &format!("ansible_user: {}", lab.user()),
            &format!("ansible_user: {deploy}"),
        )
    });
    let playbook = lab.write(
        "least-privilege.yml",
        "hosts: web\n\
         steps:\n  \
         - name: Build the release\n    \
           run: mkdir -p {{ app_dir }}/releases/v2 && cp {{ app_dir }}/releases/v1/app.py {{ app_dir }}/releases/v2/ && echo v2 > {{ app_dir }}/releases/v2/RELEASE\n  \
         - name: Switch current\n    \
           run: ln -sfn releases/v2 {{ app_dir }}/current.next && mv -T {{ app_dir }}/current.next {{ app_dir }}/current\n\
         reload:\n  unit: \"{{ app_unit }}\"\n  scope: user\n  become: true\n  become_user: \"{{ app_user }}\"\n  delivery: systemctl\n\
         validate:\n  timeout: 30s\n  settle: 1s\n  \
         http: { url: \"http://{{ ansible_host }}:{{ http_port }}/healthz\", status: 200, contains: v2 }\n",
    );
    let before = generation(host);
    let ran_reload = exec_reload_pid(&lab, "host02");
    let run = Herd::new()
        .arg("run")
        .arg(&playbook)
        .arg("-i")
        .arg(&inventory)
        .args(["-l", "host02", "--output", "json"])
        .run();
    run.assert_code(0);
    let event = reload_event(&run, "host02");
    assert_eq!(event["delivery"], "systemctl", "{run}");
    assert_ne!(exec_reload_pid(&lab, "host02"), ran_reload, "{run}");
    assert_workers_replaced(host, &before, &run);
    assert_eq!(healthz(host), "ok v2");
    // The release was written by the deploy account, not by sudo.
    let owner = Command::new("stat")
        .args(["-c", "%U"])
        .arg(host.app_dir.join("releases/v2/RELEASE"))
        .output()
        .expect("stat runs");
    assert_eq!(String::from_utf8_lossy(&owner.stdout).trim(), deploy);
}

#[test]
fn a_mixed_fleet_of_pidfile_and_unit_hosts_rolls_under_load_without_a_failed_request() {
    let Some((_one, lab)) = unit_lab(6, 2) else {
        return;
    };
    let before: Vec<_> = lab.hosts().iter().map(generation).collect();
    let herd = lab
        .herd(["run"])
        .arg(common::repo().join("playbooks/deploy.yml"))
        .args(["-e", "release=v2", "--batch", "1", "--output", "json"]);
    let run = under_load(&lab, herd);
    for (host, before) in lab.hosts().iter().zip(&before) {
        assert_workers_replaced(host, before, &run);
        assert_eq!(healthz(host), "ok v2", "{}\n{run}", host.name);
        let via = match (&host.unit, host.unit_reload) {
            (Some(_), true) => "systemctl",
            _ => "kill",
        };
        assert_eq!(
            reload_event(&run, &host.name)["delivery"],
            via,
            "{}\n{run}",
            host.name
        );
    }
}
