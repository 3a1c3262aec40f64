use std::path::Path;

use super::*;

fn build(
    inventory: &str,
    playbook: &str,
    limit: Option<&str>,
    extra: &[&str],
) -> Result<Plan, PlanError> {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("inventory.yml"), inventory).expect("write");
    std::fs::write(dir.path().join("play.yml"), playbook).expect("write");
    Plan::build(&PlanRequest {
        job: Job::Playbook(dir.path().join("play.yml")),
        inventory: dir.path().join("inventory.yml"),
        limit: limit.map(str::to_string),
        extra_vars: extra.iter().map(|s| s.to_string()).collect(),
        batch: None,
        known_hosts: Some(Path::new("/dev/null").to_path_buf()),
        ssh_config: None,
        step_timeout: Duration::from_secs(60),
    })
}

const INVENTORY: &str = "all:\n  vars:\n    app_dir: /srv/app\n  children:\n    web:\n      hosts:\n        web1:\n        web2: { app_dir: /srv/other }\n";

#[test]
fn play_vars_render_per_host_and_extra_vars_win() {
    let playbook = "hosts: web\nvars:\n  release: v1\n  venv: \"{{ app_dir }}/venv\"\nsteps:\n  - run: echo {{ venv }} {{ release }}\n";
    let plan = build(INVENTORY, playbook, None, &["release=v9"]).expect("plan");
    assert_eq!(plan.hosts[0].vars["venv"], "/srv/app/venv");
    assert_eq!(plan.hosts[1].vars["venv"], "/srv/other/venv");
    assert_eq!(plan.hosts[1].vars["release"], "v9");
}

#[test]
fn an_undefined_variable_points_at_its_use() {
    let playbook = "hosts: web\nsteps:\n  - run: echo ok\n  - run: echo {{ relase }}\n";
    let Err(PlanError::Source(error)) = build(INVENTORY, playbook, None, &[]) else {
        panic!("expected a source error");
    };
    assert_eq!(
        error.message,
        "undefined variable `relase` in run of steps[1] on host web1"
    );
    assert_eq!((error.location.line, error.location.column), (4, 18));
}

#[test]
fn captures_are_known_to_later_steps() {
    let playbook = "hosts: web\nsteps:\n  - run: readlink current\n    capture: previous\nrollback:\n  - run: ln -s {{ previous }} current\n";
    assert!(build(INVENTORY, playbook, None, &[]).is_ok());
}

#[test]
fn an_unknown_group_in_limit_points_into_the_argument() {
    let playbook = "hosts: web\nsteps:\n  - run: true\n";
    let Err(PlanError::Source(error)) = build(INVENTORY, playbook, Some("web1,dbz"), &[]) else {
        panic!("expected a source error");
    };
    assert_eq!(error.location.file, Path::new("--limit"));
    assert_eq!(error.location.column, 6);
    assert!(error.message.contains("`dbz`"), "{}", error.message);
}

#[test]
fn limit_narrows_the_playbook_hosts() {
    let playbook = "hosts: web\nsteps:\n  - run: true\n";
    let plan = build(INVENTORY, playbook, Some("web2"), &[]).expect("plan");
    let names: Vec<&str> = plan.hosts.iter().map(|h| h.name.as_str()).collect();
    assert_eq!(names, ["web2"]);
}

#[test]
fn variables_marked_secret_are_masked() {
    let inventory = "all:\n  vars:\n    herd_secret_vars: [db_password]\n    db_password: hunter2-db\n  hosts:\n    web1:\n";
    let playbook = "hosts: all\nsteps:\n  - run: psql --password {{ db_password }}\n";
    let plan = build(inventory, playbook, None, &[]).expect("plan");
    assert_eq!(plan.renderer.secrets().mask("pw=hunter2-db"), "pw=***");
}

#[test]
fn bad_extra_vars_are_usage_errors() {
    let playbook = "hosts: web\nsteps:\n  - run: true\n";
    assert!(matches!(
        build(INVENTORY, playbook, None, &["novalue"]),
        Err(PlanError::Usage(_))
    ));
}

#[test]
fn reserved_names_cannot_be_given_with_e() {
    let playbook = "hosts: web\nsteps:\n  - run: true\n";
    for pair in ["env=prod", "inventory_hostname=x"] {
        let Err(PlanError::Usage(message)) = build(INVENTORY, playbook, None, &[pair]) else {
            panic!("{pair} was accepted");
        };
        assert!(message.contains("a name herd sets itself"), "{message}");
    }
}

/// The source error a plan fails with.
fn source_error(inventory: &str, playbook: &str, extra: &[&str]) -> SourceError {
    match build(inventory, playbook, None, extra) {
        Err(PlanError::Source(error)) => error,
        Err(other) => panic!("expected a source error, got {other}"),
        Ok(_) => panic!("expected a source error, got a plan"),
    }
}

const ANY_PLAY: &str = "hosts: all\nsteps:\n  - run: true\n";

#[test]
fn a_connection_variable_of_a_flow_style_host_is_pointed_at() {
    let inventory = "all:\n  hosts:\n    web1: { ansible_host: 127.0.0.1, ansible_port: x }\n";
    let mut error = source_error(inventory, ANY_PLAY, &[]);
    error.location.file = "inventory.yml".into();
    assert_eq!(
        error.to_string(),
        "host web1: `ansible_port: x` is not a TCP port (1-65535)\n  --> inventory.yml:3:52\n  |\n3 |     web1: { ansible_host: 127.0.0.1, ansible_port: x }\n  |                                                    ^"
    );
}

#[test]
fn a_bad_port_is_reported_on_its_own_line() {
    let inventory = "all:\n  children:\n    web:\n      hosts:\n        web1:\n          ansible_port: 22\n        web2:\n          ansible_host: 127.0.0.2\n          ansible_port: 70000\n";
    let error = source_error(inventory, ANY_PLAY, &[]);
    assert_eq!(
        (error.location.line, error.location.column),
        (9, 25),
        "{error}"
    );
}

#[test]
fn the_same_text_twice_points_at_the_wrong_one() {
    // Both hosts write `ansible_port: 0`-like text; only web2's is used
    // wrongly (a group var overrides web1's).
    let inventory = "all:\n  hosts:\n    web1: { ansible_user: '' }\n  children:\n    web:\n      hosts:\n        web2: { ansible_user: '' }\n      vars:\n        ansible_user: deploy\n";
    let error = source_error(inventory, ANY_PLAY, &[]);
    assert!(error.message.starts_with("host web1: "), "{error}");
    assert_eq!((error.location.line, error.location.column), (3, 27));
    let limited = "all:\n  hosts:\n    web1: { ansible_port: 2200 }\n    web2: { ansible_port: 0 }\n    web3: { ansible_port: 0 }\n";
    let playbook = "hosts: web3\nsteps:\n  - run: true\n";
    let error = source_error(limited, playbook, &[]);
    assert!(error.message.starts_with("host web3: "), "{error}");
    assert_eq!((error.location.line, error.location.column), (5, 27));
}

#[test]
fn a_connection_variable_set_in_the_playbook_points_there() {
    let playbook = "hosts: web\nvars:\n  ansible_port: nope\nsteps:\n  - run: true\n";
    let error = source_error(INVENTORY, playbook, &[]);
    assert_eq!(error.location.file.file_name().unwrap(), "play.yml");
    assert_eq!((error.location.line, error.location.column), (3, 17));
    let Err(PlanError::Usage(message)) = build(INVENTORY, ANY_PLAY, None, &["ansible_port=x"])
    else {
        panic!("-e ansible_port=x was accepted");
    };
    assert!(
        message.starts_with("-e ansible_port: host web1: "),
        "{message}"
    );
}

#[test]
fn merged_inventory_vars_connect_where_they_say() {
    let inventory = "all:\n  vars:\n    base: &base\n      ansible_host: 127.0.0.9\n      ansible_port: 2222\n  hosts:\n    web1:\n      <<: *base\n      ansible_port: 2200\n";
    let plan = build(inventory, ANY_PLAY, None, &[]).expect("plan");
    assert_eq!(plan.hosts[0].target.address, "127.0.0.9");
    assert_eq!(plan.hosts[0].target.port, 2200);
    assert!(!plan.hosts[0].vars.contains_key("<<"));
}

#[test]
fn templates_are_found_by_their_place_not_their_text() {
    // `{{ app_dir }}` is written several times; the error is in the one
    // that also names an undefined variable.
    let playbook = "hosts: web\nsteps:\n  - run: echo {{ app_dir }}\n    env:\n      A: '{{ app_dir }}'\n      B: '{{ app_dir }}/{{ nope }}'\n";
    let error = source_error(INVENTORY, playbook, &[]);
    assert_eq!(
        error.message,
        "undefined variable `nope` in env of steps[0] on host web1"
    );
    assert_eq!((error.location.line, error.location.column), (6, 28));
    let duplicate_text = "hosts: web\nvars:\n  a: '{{ app_dir }}'\nsteps:\n  - run: echo {{ app_dir }}\nrollback:\n  - run: echo {{ app_dir }}\n    cwd: '{{ app_dir }}/{{ missing }}'\n";
    let error = source_error(INVENTORY, duplicate_text, &[]);
    assert_eq!(
        (error.location.line, error.location.column),
        (8, 28),
        "{error}"
    );
}

#[test]
fn a_secret_given_as_one_name_is_shown_masked_wherever_it_is_used() {
    let inventory = "all:\n  vars:\n    herd_secret_vars: pin\n    pin: 42\n    password: \"it's-x\"\n  hosts:\n    web1:\n";
    let playbook = "hosts: all\nvars:\n  herd_secret_vars: [pin, password]\n  dsn: \"db://app:{{ password }}@db?pin={{ pin }}\"\nsteps:\n  - run: unlock {{ pin }} {{ password }} {{ dsn }}\n";
    let plan = build(inventory, playbook, None, &[]).expect("plan");
    let host = &plan.hosts[0];
    assert_eq!(host.vars["pin"], 42);
    assert_eq!(host.shown_vars["pin"], "***");
    assert_eq!(host.shown_vars["password"], "***");
    assert_eq!(host.shown_vars["dsn"], "db://app:***@db?pin=***");
    let shown = plan.steps[0]
        .render_shown(&plan.renderer, &host.shown_vars)
        .expect("renders");
    assert_eq!(
        shown,
        step::Rendered::Run {
            command: "unlock '***' '***' 'db://app:***@db?pin=***'".into()
        }
    );
}

#[test]
fn herd_secret_vars_of_another_type_points_at_it() {
    let inventory =
        "all:\n  vars:\n    app_dir: /srv/app\n    herd_secret_vars: 42\n  hosts:\n    web1:\n";
    let playbook = "hosts: all\nsteps:\n  - run: \"true\"\n";
    let Err(PlanError::Source(error)) = build(inventory, playbook, None, &[]) else {
        panic!("expected a source error");
    };
    assert_eq!(
        error.message,
        "herd_secret_vars must be a variable name or a list of names, not a number"
    );
    assert_eq!((error.location.line, error.location.column), (4, 23));

    let playbook =
        "hosts: all\nvars:\n  herd_secret_vars: [pin, {a: 1}]\nsteps:\n  - run: \"true\"\n";
    let Err(PlanError::Source(error)) = build(INVENTORY, playbook, None, &[]) else {
        panic!("expected a source error");
    };
    assert_eq!(
        error.message,
        "herd_secret_vars must be a variable name or a list of names, not a list holding a mapping"
    );
    assert!(error.location.file.ends_with("play.yml"));
    assert_eq!((error.location.line, error.location.column), (3, 21));
}

#[test]
fn herd_secret_vars_at_every_level_add_up() {
    let inventory = "all:\n  vars:\n    herd_secret_vars: [pin]\n    pin: \"7\"\n    tok: abc\n    key: kkk\n    other: ooo\n  children:\n    web:\n      vars:\n        herd_secret_vars: key\n      hosts:\n        web1:\n          herd_secret_vars: \"other,\"\n";
    let playbook =
        "hosts: all\nvars:\n  herd_secret_vars: [dsn]\n  dsn: x\nsteps:\n  - run: \"true\"\n";
    for extra in [
        &["herd_secret_vars=tok"][..],
        &["herd_secret_vars=tok, pin"][..],
    ] {
        let plan = build(inventory, playbook, None, extra).expect("plan");
        let shown = &plan.hosts[0].shown_vars;
        for name in ["pin", "tok", "key", "other", "dsn"] {
            assert_eq!(shown[name], "***", "{name} with {extra:?}");
        }
    }
}

#[test]
fn herd_secret_vars_names_must_be_variable_names() {
    let playbook = "hosts: all\nsteps:\n  - run: \"true\"\n";
    for given in ["herd_secret_vars=[tok]", "herd_secret_vars=tok;pin"] {
        let Err(PlanError::Usage(message)) = build(INVENTORY, playbook, None, &[given]) else {
            panic!("expected a usage error for {given}");
        };
        let value = given.trim_start_matches("herd_secret_vars=");
        assert_eq!(
            message,
            format!("-e {given}: herd_secret_vars: `{value}` is not a valid variable name")
        );
    }
    let inventory = "all:\n  vars:\n    herd_secret_vars: [pin, \"a b\"]\n  hosts:\n    web1:\n";
    let Err(PlanError::Source(error)) = build(inventory, playbook, None, &[]) else {
        panic!("expected a source error");
    };
    assert_eq!(
        error.message,
        "herd_secret_vars: `a b` is not a valid variable name"
    );
    assert_eq!((error.location.line, error.location.column), (3, 23));
}

#[test]
fn a_mapping_or_boolean_secret_keeps_its_shape_when_shown() {
    let inventory = "all:\n  vars:\n    herd_secret_vars: [creds, flag]\n    creds: {user: bob, pass: hunter22, n: 9}\n    flag: true\n  hosts:\n    web1:\n";
    let playbook =
        "hosts: all\nsteps:\n  - run: echo pass={{ creds.pass }} n={{ creds.n }} flag={{ flag }}\n";
    let plan = build(inventory, playbook, None, &[]).expect("plan");
    let host = &plan.hosts[0];
    assert_eq!(
        host.shown_vars["creds"],
        serde_json::json!({"user": "***", "pass": "***", "n": "***"})
    );
    let shown = plan.steps[0]
        .render_shown(&plan.renderer, &host.shown_vars)
        .expect("renders");
    assert_eq!(
        shown,
        step::Rendered::Run {
            command: "echo pass='***' n='***' flag='***'".into()
        }
    );
    assert_eq!(
        plan.renderer.secrets().mask("hunter22 True true"),
        "*** *** ***"
    );
}

const SECRET_INVENTORY: &str = "all:\n  vars:\n    herd_secret_vars: [api_key, pin]\n    pin: \"7\"\n    api_key: \"Sup3r'Secret\"\n  hosts:\n    web1:\n";

#[test]
fn herds_messages_quote_the_health_check_url_with_secrets_shown_masked() {
    let playbook = "hosts: all\nsteps:\n  - run: \"true\"\nreload:\n  pidfile: /srv/app/gunicorn.pid\nvalidate:\n  http: { url: \"http://127.0.0.1:8000/nope?token={{ api_key }}&p={{ pin }}\", contains: \"v{{ pin }}\" }\n";
    let plan = build(SECRET_INVENTORY, playbook, None, &[]).expect("plan");
    let host = &plan.hosts[0];
    let stage = plan.reload.as_ref().expect("a reload stage");
    let said = "http://127.0.0.1:8000/nope?token=Sup3r'Secret&p=7: the response does not contain `v7`: `v1`, exit 7";
    assert_eq!(
        stage.shown_message(&plan.renderer, &host.vars, &host.shown_vars, said),
        "http://127.0.0.1:8000/nope?token=***&p=***: the response does not contain `v***`: `v1`, exit ***"
    );

    let https = playbook.replace("http://", "https://");
    let Err(PlanError::Source(error)) = build(SECRET_INVENTORY, &https, None, &[]) else {
        panic!("expected a source error");
    };
    assert!(
        error
            .message
            .starts_with("`https://127.0.0.1:8000/nope?token=***&p=***` is an https:// URL"),
        "{error}"
    );
}

/// The plan of `inventory` with a client config whose `Match exec` passes
/// `%h %n %r` to the shell, and whether that shell ever ran.
fn build_with_logging_exec(inventory: &str) -> (Result<Plan, PlanError>, bool) {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("log");
    let config = dir.path().join("ssh_config");
    std::fs::write(
        &config,
        format!("Match exec \"echo %h %n %r >> '{}'\"\n", log.display()),
    )
    .expect("write");
    std::fs::write(dir.path().join("inventory.yml"), inventory).expect("write");
    let plan = Plan::build(&PlanRequest {
        job: Job::Command("true".into()),
        inventory: dir.path().join("inventory.yml"),
        limit: None,
        extra_vars: Vec::new(),
        batch: None,
        known_hosts: Some(Path::new("/dev/null").to_path_buf()),
        ssh_config: Some(config),
        step_timeout: Duration::from_secs(60),
    });
    (plan, log.exists())
}

#[test]
fn names_ssh_refuses_stop_the_plan_at_their_inventory_position_before_any_shell() {
    let canary = tempfile::tempdir().expect("temp dir");
    let touch = format!("touch {}", canary.path().join("p").display());
    for (inventory, line, column, message) in [
        (
            format!("all:\n  hosts:\n    \"evil$({touch})\":\n"),
            3,
            5,
            format!("host evil$({touch}): hostname `evil$({touch})` contains invalid characters: it has `$`; ssh refuses it too"),
        ),
        (
            format!("all:\n  hosts:\n    semi:\n      ansible_host: \"h;{touch};\"\n"),
            4,
            21,
            format!("host semi: hostname `h;{touch};` contains invalid characters: it has `;`; ssh refuses it too"),
        ),
        (
            format!("all:\n  vars:\n    ansible_user: \"u`{touch}`\"\n  hosts:\n    web1:\n"),
            3,
            19,
            format!("host web1: remote username `u`{touch}`` contains invalid characters: it has a backquote; ssh refuses it too"),
        ),
        (
            "all:\n  hosts:\n    web1:\n      ansible_ssh_common_args: -J -oProxyCommand=x\n".to_string(),
            4,
            32,
            "host web1: ProxyJump `-oProxyCommand=x`: hostname `-oProxyCommand=x` contains invalid characters: it starts with `-`; ssh refuses it too".to_string(),
        ),
    ] {
        let (plan, ran) = build_with_logging_exec(&inventory);
        let Err(PlanError::Source(error)) = plan else {
            panic!("expected a source error for {inventory}");
        };
        assert_eq!(
            (error.location.line, error.location.column, error.message.as_str()),
            (line, column, message.as_str()),
            "{inventory}"
        );
        // web1 is a name ssh accepts: its own `Match exec` runs before its
        // bastion is looked at.
        assert_eq!(ran, inventory.contains("-J"), "{inventory}");
    }
    assert!(!canary.path().join("p").exists(), "a name reached a shell");
    // Ordinary names pass, and their `Match exec` runs.
    let (plan, ran) = build_with_logging_exec(
        "all:\n  hosts:\n    web-01.example.com:\n    v6: { ansible_host: \"fe80::1\", ansible_user: deploy_2 }\n",
    );
    assert_eq!(plan.expect("plan").hosts.len(), 2);
    assert!(ran);
}

/// `web0` is written before `db1` but sits a level deeper, so Ansible's
/// `all` gives it last.
const NESTED: &str = "all:\n  hosts:\n    bastion:\n  children:\n    web:\n      hosts:\n        web1:\n        web2:\n      children:\n        canary:\n          hosts:\n            web0:\n    db:\n      hosts:\n        db1:\n";

fn planned(job: Job, limit: Option<&str>) -> Result<(Vec<String>, Vec<Vec<usize>>), PlanError> {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("inventory.yml"), NESTED).expect("write");
    let job = match job {
        Job::Playbook(hosts) => {
            let path = dir.path().join("play.yml");
            let text = format!("hosts: \"{}\"\nsteps:\n  - run: true\n", hosts.display());
            std::fs::write(&path, text).expect("write");
            Job::Playbook(path)
        }
        other => other,
    };
    let plan = Plan::build(&PlanRequest {
        job,
        inventory: dir.path().join("inventory.yml"),
        limit: limit.map(str::to_string),
        extra_vars: Vec::new(),
        batch: Some("1".into()),
        known_hosts: Some(Path::new("/dev/null").to_path_buf()),
        ssh_config: Some(Path::new("/dev/null").to_path_buf()),
        step_timeout: Duration::from_secs(60),
    })?;
    let names = plan.hosts.iter().map(|h| h.name.clone()).collect();
    Ok((names, plan.batches))
}

#[test]
fn batches_follow_the_plays_pattern_in_ansibles_order() {
    let (names, batches) = planned(Job::Playbook("db,web".into()), None).expect("plan");
    assert_eq!(names, ["db1", "web1", "web2", "web0"]);
    assert_eq!(batches, [[0], [1], [2], [3]]);
    // --limit narrows the play's hosts and keeps their order.
    let (names, _) = planned(Job::Playbook("web".into()), Some("web0,web1")).expect("plan");
    assert_eq!(names, ["web1", "web0"]);
    let (names, _) = planned(Job::Playbook("web[-1]".into()), None).expect("plan");
    assert_eq!(names, ["web0"]);
}

#[test]
fn without_a_playbook_hosts_come_in_the_limits_order_or_alls() {
    let (names, _) = planned(Job::Command("true".into()), None).expect("plan");
    assert_eq!(names, ["bastion", "web1", "web2", "db1", "web0"]);
    let (names, _) = planned(Job::Command("true".into()), Some("web[-1],db")).expect("plan");
    assert_eq!(names, ["web0", "db1"]);
}

#[test]
fn a_missing_limit_file_points_into_the_argument() {
    let Err(PlanError::Source(error)) =
        planned(Job::Command("true".into()), Some("db,@/nonexistent/retry"))
    else {
        panic!("expected a source error");
    };
    assert_eq!(error.location.file, Path::new("--limit"));
    assert_eq!(error.location.column, 4);
    assert_eq!(
        error.message,
        "cannot read limit file `/nonexistent/retry`: No such file or directory (os error 2)"
    );
}
