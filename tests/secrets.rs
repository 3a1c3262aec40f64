//! Secrets never reach what herd prints: its own messages quote templates in
//! their display form, secret mappings and booleans are masked leaf by leaf,
//! `herd_secret_vars` adds up across levels, and a step's output is masked
//! by what the step was given made from secrets.

mod common;

use std::fs;

use common::{plan_and_json_run, Lab};

const SECRETS: &str =
    "    herd_secret_vars: [api_key, pin]\n    pin: \"7\"\n    api_key: \"Sup3r'Secret\"\n";

/// Fails the test if any form of the lab secrets appears in `text`.
fn assert_no_secret(what: &str, text: &str) {
    for leaked in [
        "Sup3r", "SUP3R", "Secret", "p=7", "pin=7", "hunter22", "bob",
    ] {
        assert!(
            !text.contains(leaked),
            "`{leaked}` leaked into {what}:\n{text}"
        );
    }
}

#[test]
fn a_short_secret_in_a_health_check_url_never_appears_in_herds_messages() {
    let lab = Lab::up(1);
    let inventory = lab.inventory_with_vars(SECRETS);
    let playbook = lab.write(
        "url.yml",
        "hosts: web\nsteps:\n  - run: \"true\"\nreload:\n  pidfile: \"{{ gunicorn_pidfile }}\"\n  start: \"{{ app_start }}\"\nvalidate:\n  timeout: 8s\n  http: { url: \"http://127.0.0.2:{{ http_port }}/nope?token={{ api_key }}&p={{ pin }}\" }\n",
    );
    let report = lab.dir().join("junit.xml");

    let plain = common::Herd::new()
        .args(["run", "-i"])
        .arg(&inventory)
        .arg(&playbook)
        .arg("--report")
        .arg(&report)
        .run();
    let json = common::Herd::new()
        .args(["run", "--output", "json", "-i"])
        .arg(&inventory)
        .arg(&playbook)
        .run();

    plain.assert_code(1);
    json.assert_code(1);
    let junit = fs::read_to_string(&report).expect("the report is written");
    let port = lab.host("host01").http_port;
    let shown = format!("proof `http`: http://127.0.0.2:{port}/nope?token=***&p=***: status 404");
    assert!(plain.stderr().contains(&shown), "{plain}");
    assert!(junit.contains("token=***&amp;p=***: status 404"), "{junit}");
    assert!(
        json.stdout().contains("token=***&p=***: status 404"),
        "{json}"
    );
    for (what, text) in [
        ("stderr", plain.stderr()),
        ("stdout", plain.stdout()),
        ("json", json.stdout()),
        ("json stderr", json.stderr()),
        ("the JUnit report", &junit),
    ] {
        assert_no_secret(what, text);
    }
}

#[test]
fn a_secret_mapping_or_boolean_is_masked_leaf_by_leaf() {
    let lab = Lab::up(1);
    let inventory = lab.inventory_with_vars(
        "    herd_secret_vars: [creds, flag]\n    creds: {user: bob, pass: hunter22, n: 9}\n    flag: true\n",
    );
    let playbook = lab.write(
        "creds.yml",
        "hosts: web\nsteps:\n  - name: Use the creds\n    run: echo pass={{ creds.pass }} n={{ creds.n }} flag={{ flag }} user={{ creds.user }} all={{ creds }}\n",
    );

    let (plan, run) = plan_and_json_run(&inventory, &playbook);

    plan.assert_code(0);
    run.assert_code(0);
    assert!(
        plan.stdout().contains(
            r#"echo pass='***' n='***' flag='***' user='***' all='{"n": "***", "pass": "***", "user": "***"}'"#
        ),
        "{plan}"
    );
    let finished = run.step_finished();
    assert_eq!(
        finished["stdout"], "pass=*** n=*** flag=*** user=*** all=***\n",
        "{run}"
    );
    for (what, text) in [
        ("plan", plan.stdout()),
        ("run", run.stdout()),
        ("run stderr", run.stderr()),
    ] {
        assert_no_secret(what, text);
        assert!(
            !text.contains("True"),
            "the flag leaked into {what}:\n{text}"
        );
    }
}

#[test]
fn herd_secret_vars_given_with_dash_e_adds_to_the_inventorys() {
    let lab = Lab::up(1);
    let inventory = lab.inventory_with_vars(SECRETS);
    let playbook = lab.write(
        "tok.yml",
        "hosts: web\nsteps:\n  - name: Use them\n    run: echo pin={{ pin }} tok={{ tok }}\n",
    );

    let run = common::Herd::new()
        .args(["run", "--output", "json", "-e", "herd_secret_vars=tok"])
        .args(["-e", "tok=tok-value", "-i"])
        .arg(&inventory)
        .arg(&playbook)
        .run();
    let odd = common::Herd::new()
        .args(["run", "-e", "herd_secret_vars=[tok]", "-i"])
        .arg(&inventory)
        .arg(&playbook)
        .run();

    run.assert_code(0);
    let finished = run.step_finished();
    assert_eq!(finished["stdout"], "pin=*** tok=***\n", "{run}");
    assert_no_secret("run", run.stdout());
    assert!(!run.stdout().contains("tok-value"), "{run}");
    odd.assert_code(2);
    assert_eq!(
        odd.stderr(),
        "error: -e herd_secret_vars=[tok]: herd_secret_vars: `[tok]` is not a valid variable name\n",
        "{odd}"
    );
    assert!(lab.hosts_with_lock_file().is_empty(), "{odd}");
}

#[test]
fn a_step_output_is_masked_by_what_the_step_was_given_from_secrets() {
    let lab = Lab::up(1);
    let inventory = lab.inventory_with_vars(SECRETS);
    let playbook = lab.write(
        "upper.yml",
        "hosts: web\nsteps:\n  - name: Shout\n    run: echo key-upper={{ api_key | upper }} pinword=7; echo {{ api_key | lower }} >&2; exit 3\n",
    );
    let report = lab.dir().join("junit.xml");

    let run = common::Herd::new()
        .args(["run", "--output", "json", "-i"])
        .arg(&inventory)
        .arg(&playbook)
        .arg("--report")
        .arg(&report)
        .run();

    run.assert_code(1);
    let finished = run.step_finished();
    assert_eq!(finished["stdout"], "key-upper=*** pinword=7\n", "{run}");
    assert_eq!(finished["stderr"], "***\n", "{run}");
    let junit = fs::read_to_string(&report).expect("the report is written");
    for (what, text) in [
        ("json", run.stdout()),
        ("stderr", run.stderr()),
        ("the JUnit report", &junit),
    ] {
        assert_no_secret(what, text);
        assert!(
            !text.contains("sup3r"),
            "the key leaked into {what}:\n{text}"
        );
    }
}

#[test]
fn a_captured_output_holding_a_secret_feeds_later_steps_and_is_shown_masked() {
    let lab = Lab::up(1);
    let inventory = lab.inventory_with_vars(SECRETS);
    let playbook = lab.write(
        "capture.yml",
        "hosts: web\nsteps:\n  - run: printf '%s\\n' {{ api_key }}\n    capture: key\n  - run: test {{ key }} = {{ api_key }} && echo same && printf '%s\\n' {{ key }}\n",
    );

    let run = common::Herd::new()
        .args(["run", "--output", "json", "-i"])
        .arg(&inventory)
        .arg(&playbook)
        .run();

    // The later step got the real value (the test in it held), and what
    // it printed of it is masked.
    run.assert_code(0);
    let second = run
        .json_events()
        .into_iter()
        .find(|e| e["event"] == "step_finished" && e["step"] == 2)
        .expect("step 2 finished");
    assert_eq!(second["stdout"], "same\n***\n", "{run}");
    assert_no_secret("stdout", run.stdout());
    assert_no_secret("stderr", run.stderr());
}
