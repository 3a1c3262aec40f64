//! `when:` through the lab: a step runs on the hosts where its condition
//! holds and is reported as skipped on the others; templates see Ansible's
//! magic variables, and another host's secret reached through `hostvars`
//! stays masked in everything herd prints.

mod common;

use std::fs;

use common::Lab;

const SECRET: &str = "Tok3-vault-secret";

/// host02 is the canary; host03 also holds the vault token (a secret).
fn inventory(lab: &Lab) -> std::path::PathBuf {
    lab.edited_inventory("groups.yml", |text| {
        format!(
            "{text}    canary:\n      hosts:\n        host02:\n    vault:\n      hosts:\n        host03:\n          vault_token: {SECRET}\n          herd_secret_vars: vault_token\n"
        )
    })
}

const PLAYBOOK: &str = "\
name: Canary first
hosts: web
steps:
  - name: Mark the canary
    run: touch {{ app_dir }}/canary-{{ inventory_hostname_short }}
    when: \"'canary' in group_names\"
  - name: Write the groups
    run: printf '%s\\n' {{ group_names | join(',') }} > {{ app_dir }}/groups
  - name: Ask the vault
    run: printf 'token=%s\\n' {{ hostvars[groups['vault'][0]].vault_token }}; echo {{ hostvars['host03'].vault_token | lower }} >&2; touch {{ app_dir }}/asked
    when: inventory_hostname == groups['web'][0]
";

#[test]
fn a_when_step_runs_on_its_groups_hosts_and_is_skipped_on_the_others() {
    let lab = Lab::up(3);
    let inventory = inventory(&lab);
    let playbook = lab.write("canary.yml", PLAYBOOK);

    let plan = common::Herd::new()
        .args(["plan", "-i"])
        .arg(&inventory)
        .arg(&playbook)
        .run();
    plan.assert_code(0);
    assert!(
        plan.stdout().contains(
            "step 1. Mark the canary: when 'canary' in group_names: skipped on 2 of 3 host(s): host01 host03"
        ),
        "{plan}"
    );
    assert!(
        plan.stdout()
            .contains("step 3. Ask the vault: when inventory_hostname == groups['web'][0]: skipped on 2 of 3 host(s): host02 host03"),
        "{plan}"
    );
    assert!(
        plan.stdout().contains("printf 'token=%s\\n' '***'"),
        "{plan}"
    );

    let run = common::Herd::new()
        .args(["run", "-i"])
        .arg(&inventory)
        .arg(&playbook)
        .args(["--output", "json"])
        .run();
    run.assert_code(0);

    // What changed on each host.
    for host in lab.hosts() {
        let app = &host.app_dir;
        let canary = app.join(format!("canary-{}", host.name)).exists();
        assert_eq!(canary, host.name == "host02", "{}\n{run}", host.name);
        let asked = app.join("asked").exists();
        assert_eq!(asked, host.name == "host01", "{}\n{run}", host.name);
        let groups = fs::read_to_string(app.join("groups")).unwrap();
        let expected = match host.name.as_str() {
            "host02" => "canary,web\n",
            "host03" => "vault,web\n",
            _ => "web\n",
        };
        assert_eq!(groups, expected, "{}\n{run}", host.name);
    }

    // The events: skipped steps are step_skipped, never step_finished.
    let events = run.json_events();
    let of = |kind: &str, host: &str| -> Vec<u64> {
        events
            .iter()
            .filter(|e| e["event"] == kind && e["host"] == host)
            .map(|e| e["step"].as_u64().unwrap())
            .collect()
    };
    assert_eq!(of("step_skipped", "host01"), [1], "{run}");
    assert_eq!(of("step_finished", "host01"), [2, 3], "{run}");
    assert_eq!(of("step_skipped", "host02"), [3], "{run}");
    assert_eq!(of("step_finished", "host02"), [1, 2], "{run}");
    assert_eq!(of("step_skipped", "host03"), [1, 3], "{run}");
    assert_eq!(of("step_finished", "host03"), [2], "{run}");
    let skip = events
        .iter()
        .find(|e| e["event"] == "step_skipped" && e["host"] == "host01")
        .unwrap();
    assert_eq!(skip["reason"], "when: 'canary' in group_names", "{skip}");
    assert_eq!(skip["name"], "Mark the canary", "{skip}");
    assert_eq!(skip["rollback"], false, "{skip}");

    // The report: every host done, its skipped steps counted apart.
    let report = &events.last().unwrap()["report"];
    for (host, ok, skipped) in [("host01", 2, 1), ("host02", 2, 1), ("host03", 1, 2)] {
        let row = report["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["host"] == host)
            .unwrap();
        assert_eq!(row["state"], "done", "{row}");
        assert_eq!(row["steps_ok"], ok, "{row}");
        assert_eq!(row["steps_skipped"], skipped, "{row}");
        assert_eq!(row["steps_total"], 3, "{row}");
    }

    // host03's secret, used on host01 through hostvars, shows nowhere.
    let asked = events
        .iter()
        .find(|e| e["event"] == "step_finished" && e["host"] == "host01" && e["step"] == 3)
        .unwrap();
    assert_eq!(asked["stdout"], "token=***\n", "{asked}");
    assert_eq!(asked["stderr"], "***\n", "{asked}");
    // Again in human form, with a JUnit report.
    let junit = lab.dir().join("when-report.xml");
    let human = common::Herd::new()
        .args(["run", "-i"])
        .arg(&inventory)
        .arg(&playbook)
        .arg("--report")
        .arg(&junit)
        .run();
    human.assert_code(0);
    let junit = fs::read_to_string(&junit).unwrap();
    assert!(junit.contains("tests=\"3\" failures=\"0\""), "{junit}");
    assert!(
        human.stderr().contains(
            "host03: [3] Ask the vault: skipped (when: inventory_hostname == groups['web'][0])"
        ),
        "{human}"
    );
    for text in [
        plan.stdout(),
        plan.stderr(),
        run.stdout(),
        run.stderr(),
        human.stdout(),
        human.stderr(),
        &junit,
    ] {
        assert!(
            !text.to_lowercase().contains(&SECRET.to_lowercase()),
            "{text}"
        );
    }
}

#[test]
fn skipped_steps_show_in_the_progress_lines_and_the_summary() {
    let lab = Lab::up(2);
    let playbook = lab.write(
        "skip.yml",
        "hosts: web\nsteps:\n  - name: Only host02\n    run: touch {{ app_dir }}/only\n    when: inventory_hostname == 'host02'\n",
    );

    let run = lab.herd(["run"]).arg(&playbook).run();

    run.assert_code(0);
    assert!(!lab.app_dir("host01").join("only").exists(), "{run}");
    assert!(lab.app_dir("host02").join("only").exists(), "{run}");
    assert!(
        run.stderr()
            .lines()
            .any(|l| l == "host01: [1] Only host02: skipped (when: inventory_hostname == 'host02')"),
        "{run}"
    );
    assert_eq!(run.summary_result("host01"), "done", "{run}");
    let row = run.summary_row("host01");
    assert!(row.contains("0/1"), "{row}\n{run}");
    assert!(
        row.ends_with("1 step(s) skipped (when: false)"),
        "{row}\n{run}"
    );
    assert!(run.summary_row("host02").contains("1/1"), "{run}");
}

/// Logins each lab host's sshd has accepted so far.
fn logins(lab: &Lab) -> Vec<usize> {
    lab.hosts()
        .iter()
        .map(|h| {
            fs::read_to_string(lab.sshd_log(&h.name))
                .unwrap_or_default()
                .matches("Accepted publickey")
                .count()
        })
        .collect()
}

#[test]
fn a_when_that_cannot_be_decided_stops_the_run_before_any_host_is_contacted() {
    let lab = Lab::up(2);
    let canary = lab.dir().join("when-canary");
    let before = logins(&lab);
    for (name, when, at) in [
        ("undefined.yml", "relase == 'v2'".to_string(), ":5:12"),
        ("string.yml", "'false'".to_string(), ":5:11"),
        // Shell and template text in a string is data: compared, never run.
        (
            "hostile.yml",
            format!(
                "'$(touch {c})' in group_names or '{{{{ 7 * 7 }}}}' == 49",
                c = canary.display()
            ),
            "",
        ),
    ] {
        let playbook = lab.write(
            name,
            &format!("hosts: web\nsteps:\n  - run: touch {{{{ app_dir }}}}/ran\n    name: Mark\n    when: \"{when}\"\n"),
        );
        let run = lab.herd(["run"]).arg(&playbook).run();
        if at.is_empty() {
            // Decided: false everywhere, so nothing ran and all is done.
            run.assert_code(0);
            assert_eq!(run.summary_result("host01"), "done", "{run}");
            // This run did log in: the count above would have seen one.
            assert!(logins(&lab) > before, "{run}");
        } else {
            run.assert_code(2);
            assert!(
                run.stderr().contains(&format!("{name}{at}")),
                "{name}: no position\n{run}"
            );
            assert_eq!(logins(&lab), before, "{name}: a host was contacted\n{run}");
        }
        for host in lab.hosts() {
            assert!(!host.app_dir.join("ran").exists(), "{name}\n{run}");
        }
        assert!(!canary.exists(), "{name}\n{run}");
    }
}
