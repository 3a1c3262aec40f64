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
        .render_shown(&plan.renderer, &host.shown_vars, &[])
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
        .render_shown(&plan.renderer, &host.shown_vars, &[])
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
    // A host's name holds no space (the inventory refuses one before ssh's
    // rules are looked at): `${IFS}` stands for it.
    let name_touch = format!("touch${{IFS}}{}", canary.path().join("p").display());
    for (inventory, line, column, message) in [
        (
            format!("all:\n  hosts:\n    \"evil$({name_touch})\":\n"),
            3,
            5,
            format!("host evil$({name_touch}): hostname `evil$({name_touch})` contains invalid characters: it has `$`; ssh refuses it too"),
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

/// The inventory of Ansible's magic variable checks: hosts in `all` and in
/// no group, a group with a child, a host with dots in its name.
const FLEET: &str = "all:
  hosts:
    lone.example.com:
    b1:
  children:
    web:
      hosts:
        w1:
        w2.foo.bar:
      children:
        canary:
          hosts:
            c1:
    db:
      hosts:
        d1:
          token: s3cr3t-of-d1
          herd_secret_vars: token
";

/// `source` rendered on the host `name` of `plan`.
fn render_on(plan: &Plan, name: &str, source: &str) -> String {
    let host = plan.hosts.iter().find(|h| h.name == name).expect("host");
    plan.renderer
        .render(source, crate::template::Kind::Plain, &host.vars)
        .unwrap_or_else(|e| panic!("{source} on {name}: {e}"))
}

#[test]
fn templates_see_ansibles_magic_variables() {
    // Expected values as ansible-core 2.19 prints them for this inventory
    // (`serial: 3`, lists joined with commas).
    let playbook = "hosts: all\nrolling:\n  batch: 3\nsteps:\n  - run: 'true'\n";
    let plan = build(FLEET, playbook, None, &[]).expect("plan");
    let join = |source: &str| format!("{{{{ {source} | join(',') }}}}");
    for (host, names, short) in [
        ("lone.example.com", "ungrouped", "lone"),
        ("b1", "ungrouped", "b1"),
        ("w1", "web", "w1"),
        ("w2.foo.bar", "web", "w2"),
        ("c1", "canary,web", "c1"),
        ("d1", "db", "d1"),
    ] {
        assert_eq!(render_on(&plan, host, &join("group_names")), names);
        assert_eq!(
            render_on(&plan, host, "{{ inventory_hostname_short }}"),
            short
        );
    }
    assert_eq!(
        render_on(&plan, "b1", &join("groups['all']")),
        "lone.example.com,b1,w1,w2.foo.bar,d1,c1"
    );
    assert_eq!(
        render_on(&plan, "b1", &join("groups")),
        "all,ungrouped,web,canary,db"
    );
    assert_eq!(
        render_on(&plan, "b1", &join("groups['web']")),
        "w1,w2.foo.bar,c1"
    );
    assert_eq!(
        render_on(&plan, "b1", &join("groups['ungrouped']")),
        "lone.example.com,b1"
    );
    // Another host's variables, its own magic ones included.
    assert_eq!(
        render_on(
            &plan,
            "w1",
            "{{ hostvars['c1'].inventory_hostname }} {{ hostvars['c1']['group_names'] | join(',') }} {{ hostvars['w2.foo.bar'].inventory_hostname_short }}"
        ),
        "c1 canary,web w2"
    );
    assert_eq!(
        render_on(
            &plan,
            "w1",
            "{{ 'web' in hostvars }} {{ 'd1' in hostvars }}"
        ),
        "False True"
    );
    // The run's hosts in the plan's order, and each host's batch.
    let order: Vec<&str> = plan.hosts.iter().map(|h| h.name.as_str()).collect();
    assert_eq!(
        render_on(&plan, "d1", &join("ansible_play_hosts")),
        order.join(",")
    );
    assert_eq!(
        render_on(&plan, "d1", &join("ansible_play_hosts_all")),
        order.join(",")
    );
    for (number, batch) in plan.batches.iter().enumerate() {
        let names: Vec<&str> = batch.iter().map(|&i| order[i]).collect();
        for name in &names {
            assert_eq!(
                render_on(&plan, name, &join("ansible_play_batch")),
                names.join(","),
                "batch {number}"
            );
        }
    }
}

#[test]
fn hostvars_reach_hosts_outside_the_run_and_a_limit_narrows_the_play_hosts() {
    let playbook = "hosts: web\nsteps:\n  - run: echo {{ hostvars['b1'].inventory_hostname }}\n";
    let plan = build(FLEET, playbook, Some("canary"), &[]).expect("plan");
    assert_eq!(
        render_on(
            &plan,
            "c1",
            "{{ hostvars['lone.example.com'].inventory_hostname_short }}"
        ),
        "lone"
    );
    assert_eq!(
        render_on(&plan, "c1", "{{ ansible_play_hosts | join(',') }}"),
        "c1"
    );
    assert_eq!(
        render_on(&plan, "c1", "{{ groups['web'] | join(',') }}"),
        "w1,w2.foo.bar,c1"
    );
}

#[test]
fn magic_variables_cannot_be_set_by_the_playbook_or_e() {
    let playbook = "hosts: all\nvars:\n  group_names: [x]\nsteps:\n  - run: 'true'\n";
    let error = build(FLEET, playbook, None, &[])
        .err()
        .expect("an error")
        .to_string();
    assert!(
        error.contains("`group_names` is a name herd sets itself"),
        "{error}"
    );
    assert!(error.contains("play.yml:3:3"), "{error}");
    let playbook = "hosts: all\nsteps:\n  - run: 'true'\n";
    let Err(PlanError::Usage(message)) = build(FLEET, playbook, None, &["hostvars=x"]) else {
        panic!("expected a usage error");
    };
    assert!(
        message.contains("`hostvars` is a name herd sets itself"),
        "{message}"
    );
}

#[test]
fn a_secret_of_another_host_reached_through_hostvars_is_masked_in_the_plan() {
    let playbook = "hosts: web\nsteps:\n  - name: call d1\n    run: \"curl -H X-Token={{ hostvars[groups['db'][0]].token }} {{ hostvars.d1.token | upper }}\"\n    when: hostvars['d1'].token == 's3cr3t-of-d1'\n";
    let plan = build(FLEET, playbook, None, &[]).expect("plan");
    let shown = crate::describe::plan(&plan);
    assert!(!shown.contains("s3cr3t"), "{shown}");
    assert!(!shown.contains("S3CR3T"), "{shown}");
    assert!(shown.contains("curl -H X-Token='***' '***'"), "{shown}");
    assert!(
        shown.contains("when hostvars['d1'].token == '***'"),
        "{shown}"
    );
    // The host gets the real value, and what it prints is masked.
    let host = &plan.hosts[0];
    let step::Rendered::Run { command } = plan.steps[0]
        .render_to_run(&plan.renderer, &host.vars, &[])
        .expect("renders")
    else {
        panic!("a command");
    };
    assert!(command.contains("s3cr3t-of-d1"), "{command}");
    let uses = plan.steps[0].secret_uses(&plan.renderer, &host.vars, &host.shown_vars);
    assert!(uses.contains(&"S3CR3T-OF-D1".to_string()), "{uses:?}");
    assert_eq!(plan.renderer.secrets().mask("got s3cr3t-of-d1"), "got ***");
}

/// The hosts (by name) that skip step `index` of `plan`.
fn skipped(plan: &Plan, index: usize) -> Vec<&str> {
    plan.hosts
        .iter()
        .enumerate()
        .filter(|(i, _)| plan.steps[index].when.skips(*i))
        .map(|(_, h)| h.name.as_str())
        .collect()
}

#[test]
fn when_is_decided_per_host_and_herd_plan_names_who_skips() {
    let playbook = "hosts: all\nsteps:\n  - name: canary only\n    run: echo canary\n    when: \"'canary' in group_names\"\n  - name: first web\n    run: echo first\n    when:\n      - inventory_hostname == groups['web'][0]\n      - ansible_play_hosts | length > 1\n  - run: echo always\n    when: true\n  - run: echo never\n    when: false\n";
    let plan = build(FLEET, playbook, None, &[]).expect("plan");
    let mut others: Vec<&str> = plan
        .hosts
        .iter()
        .map(|h| h.name.as_str())
        .filter(|h| *h != "c1")
        .collect();
    assert_eq!(skipped(&plan, 0), others);
    others.retain(|h| *h != "w1");
    others.push("c1");
    others.sort();
    let mut second = skipped(&plan, 1);
    second.sort();
    assert_eq!(second, others);
    assert!(skipped(&plan, 2).is_empty());
    assert_eq!(skipped(&plan, 3).len(), plan.hosts.len());
    let shown = crate::describe::plan(&plan);
    assert!(
        shown.contains(
            "step 1. canary only: when 'canary' in group_names: skipped on 5 of 6 host(s): "
        ),
        "{shown}"
    );
    assert!(
        shown.contains("step 3. echo always: when true: skipped on no host"),
        "{shown}"
    );
    assert!(shown.contains("  c1:\n    1. canary only\n       echo canary\n    2. first web (skipped: when is false)\n"), "{shown}");
}

#[test]
fn a_when_that_cannot_be_decided_stops_the_plan_at_its_place() {
    let cases = [
        // (when, message, line, column)
        ("nope == 1", "undefined variable `nope` in when of steps[0] on host lone.example.com", 7, 12),
        ("relase_ok", "undefined variable `relase_ok` in when of steps[0] on host lone.example.com", 7, 12),
        ("not relase_ok", "undefined variable `relase_ok` in when of steps[0] on host lone.example.com", 7, 16),
        (
            "'false'",
            "`when:` gave a string, not true or false: compare it (`x == 'yes'`) or convert it (`x | bool`) in when of steps[0] on host lone.example.com",
            7,
            11,
        ),
        (
            "flag",
            "`when:` gave a string, not true or false: compare it (`x == 'yes'`) or convert it (`x | bool`) in when of steps[0] on host lone.example.com",
            7,
            11,
        ),
        (
            "{{ flag }}",
            "template error: `when:` is an expression already: write it without `{{ }}` in when of steps[0] on host lone.example.com",
            7,
            11,
        ),
        (
            "inventory_hostname ==",
            "template error: unexpected end of input, expected expression in when of steps[0] on host lone.example.com",
            7,
            11,
        ),
        (
            "groups['nosuch'][0] == 'x'",
            "template error: undefined value: a key, host or group that does not exist in when of steps[0] on host lone.example.com",
            7,
            11,
        ),
        (
            "before == 'a'",
            "`when:` of steps[0] reads `before`, which a step captures as the run goes: herd decides `when:` before the run, from the inventory and the playbook",
            7,
            12,
        ),
    ];
    for (when, message, line, column) in cases {
        let playbook = format!("hosts: all\nvars:\n  flag: 'false'\nsteps:\n  - run: echo x\n    capture: before\n    when: \"{when}\"\n");
        let error = source_error(FLEET, &playbook, &[]);
        assert_eq!(error.message, message, "{when}");
        assert_eq!(
            (error.location.line, error.location.column),
            (line, column),
            "{when}: {error}"
        );
    }
    // `| bool` reads the words Ansible reads, and refuses others.
    let playbook = "hosts: all\nvars:\n  flag: 'false'\n  on: 'Yes'\nsteps:\n  - run: echo x\n    when: flag | bool\n  - run: echo y\n    when: on | bool\n";
    let plan = build(FLEET, playbook, None, &[]).expect("plan");
    assert_eq!(skipped(&plan, 0).len(), plan.hosts.len());
    assert!(skipped(&plan, 1).is_empty());
    let playbook = "hosts: all\nsteps:\n  - run: echo x\n    when: \"'maybe' | bool\"\n";
    let error = source_error(FLEET, playbook, &[]);
    assert!(
        error
            .message
            .contains("`| bool` takes true/false, yes/no, on/off or 1/0, not a string"),
        "{error}"
    );
}

#[test]
fn shell_and_template_text_in_a_when_string_is_only_data() {
    let dir = tempfile::tempdir().expect("temp dir");
    let marker = dir.path().join("pwned");
    let playbook = format!(
        "hosts: all\nsteps:\n  - run: echo x\n    when: \"'$(touch {m})' in group_names or '{{{{ 7 * 7 }}}}' == '49' or inventory_hostname == '`touch {m}`'\"\n",
        m = marker.display()
    );
    let plan = build(FLEET, &playbook, None, &[]).expect("plan");
    assert_eq!(skipped(&plan, 0).len(), plan.hosts.len());
    let shown = crate::describe::plan(&plan);
    assert!(shown.contains("'{{ 7 * 7 }}' == '49'"), "{shown}");
    assert!(!marker.exists());
}

#[test]
fn a_when_that_is_not_an_expression_is_refused_at_its_key() {
    let playbook = "hosts: all\nsteps:\n  - run: echo x\n    when: 5\n";
    let error = build(FLEET, playbook, None, &[])
        .err()
        .expect("an error")
        .to_string();
    assert!(
        error.starts_with("steps[0].when: `when` takes an expression (a string), a list of them or true/false, not a number"),
        "{error}"
    );
    assert!(error.contains("play.yml:4:11"), "{error}");
}

#[test]
fn a_steps_templates_are_checked_only_on_the_hosts_that_run_it() {
    // `token` is d1's only: the guarded step renders there, and nowhere else.
    let playbook = "hosts: all\nsteps:\n  - run: use {{ token }}\n    when: token is defined\n  - run: echo {{ missing | default('none') }}\n    when: \"missing is not defined\"\n";
    let plan = build(FLEET, playbook, None, &[]).expect("plan");
    let d1 = plan.hosts.iter().position(|h| h.name == "d1").expect("d1");
    assert_eq!(skipped(&plan, 0).len(), plan.hosts.len() - 1);
    assert!(!plan.steps[0].when.skips(d1));
    assert!(skipped(&plan, 1).is_empty());
    // Unguarded, the same step is an error on the first host without it.
    let playbook =
        "hosts: all\nsteps:\n  - run: use {{ token }}\n    when: inventory_hostname != 'w1'\n";
    let error = source_error(FLEET, playbook, &[]);
    assert_eq!(
        error.message,
        "undefined variable `token` in run of steps[0] on host lone.example.com"
    );
}

#[test]
fn a_steps_become_user_is_a_template_like_its_other_fields() {
    let inventory = "all:\n  vars:\n    app_user: deploy\n  hosts:\n    web1:\n";
    let playbook = "hosts: all\nsteps:\n  - run: whoami\n    become: true\n    become_user: \"{{ app_user }}\"\n";
    let plan = build(inventory, playbook, None, &[]).expect("plan");
    let step::Rendered::Run { command } = plan.steps[0]
        .render_to_run(&plan.renderer, &plan.hosts[0].vars, &[])
        .expect("renders")
    else {
        panic!("a command");
    };
    assert!(command.contains("-u deploy"), "{command}");
    assert!(!command.contains("{{"), "{command}");

    // Undefined there, the plan stops at the field, before any host.
    let playbook = "hosts: all\nsteps:\n  - run: whoami\n    become: true\n    become_user: \"{{ app_usr }}\"\n";
    let error = source_error(inventory, playbook, &[]);
    assert!(
        error
            .message
            .starts_with("undefined variable `app_usr` in become_user of steps[0]"),
        "{}",
        error.message
    );
    assert_eq!(error.location.line, 5);
}

/// Two hosts running different servers: `web2` runs the last server herd
/// knows (Gunicorn while it is the only one), each with its own signal.
fn fleet_inventory(web2_server: &str, web2_signal: &str) -> String {
    format!("all:\n  children:\n    web:\n      hosts:\n        web1: {{ app_server: gunicorn, app_signal: HUP }}\n        web2: {{ app_server: {web2_server}, app_signal: {web2_signal} }}\n")
}

const FLEET_PLAY: &str =
    "hosts: web\nreload:\n  server: \"{{ app_server }}\"\n  pidfile: /run/app.pid\n";

#[test]
fn a_templated_server_and_signal_resolve_on_each_host() {
    let other = crate::reload::server::SERVERS
        .last()
        .copied()
        .expect("a server");
    let inventory = fleet_inventory(other.name, other.signals[0].name);
    let plan = build(&inventory, FLEET_PLAY, None, &[]).expect("plan");
    let stage = plan.reload.as_ref().expect("a reload stage");
    assert_eq!(stage.server, "{{ app_server }}");
    let servers: Vec<_> = plan
        .hosts
        .iter()
        .map(|host| {
            let spec = stage.render(&plan.renderer, &host.vars).expect("renders");
            (spec.server.name, spec.signal.name)
        })
        .collect();
    assert_eq!(
        servers,
        [("gunicorn", "HUP"), (other.name, other.signals[0].name)]
    );
    // `herd plan` names each host's server.
    let shown = crate::describe::plan(&plan);
    assert!(
        shown.contains(&format!(
            "reload: kill -{} to the {} master",
            other.signals[0].name, other.display
        )),
        "{shown}"
    );

    // The signal, a template too: USR2 re-executes Gunicorn on web2 only.
    let play = FLEET_PLAY.replace("  pidfile", "  signal: \"{{ app_signal }}\"\n  pidfile");
    let plan = build(&fleet_inventory("gunicorn", "USR2"), &play, None, &[]).expect("plan");
    let stage = plan.reload.as_ref().expect("a reload stage");
    let signals: Vec<&str> = plan
        .hosts
        .iter()
        .map(|host| {
            stage
                .render(&plan.renderer, &host.vars)
                .expect("renders")
                .signal
                .name
        })
        .collect();
    assert_eq!(signals, ["HUP", "USR2"]);
    let shown = crate::describe::plan(&plan);
    assert!(
        shown.contains("reload: kill -HUP to the Gunicorn master"),
        "{shown}"
    );
    assert!(
        shown.contains("reload: kill -USR2 to the Gunicorn master"),
        "{shown}"
    );
}

#[test]
fn a_templated_server_unknown_on_one_host_is_refused_naming_it() {
    let error = source_error(&fleet_inventory("gunicron", "HUP"), FLEET_PLAY, &[]);
    assert_eq!(
        error.message,
        format!(
            "unknown server `gunicron`: herd reloads {} (reload.server on host web2)",
            crate::reload::server::names()
        )
    );
    assert_eq!((error.location.line, error.location.column), (3, 12));

    // Undefined on one host: like any other template.
    let inventory = "all:\n  children:\n    web:\n      hosts:\n        web1: { app_server: gunicorn }\n        web2:\n";
    let error = source_error(inventory, FLEET_PLAY, &[]);
    assert_eq!(
        error.message,
        "undefined variable `app_server` in reload.server on host web2"
    );
    assert_eq!((error.location.line, error.location.column), (3, 15));
}

#[test]
fn a_templated_signal_refused_on_one_host_is_refused_naming_it() {
    let play = FLEET_PLAY.replace("  pidfile", "  signal: \"{{ app_signal }}\"\n  pidfile");
    let error = source_error(&fleet_inventory("gunicorn", "TERM"), &play, &[]);
    assert_eq!(
        error.message,
        format!(
            "{} (reload.signal on host web2)",
            crate::reload::server::GUNICORN
                .signal(Some("TERM"))
                .expect_err("TERM is refused")
        )
    );
    assert_eq!((error.location.line, error.location.column), (4, 12));

    // A new master under systemd, on the one host whose signal makes one.
    let play = "hosts: web\nreload:\n  server: \"{{ app_server }}\"\n  signal: \"{{ app_signal }}\"\n  unit: app.service\n";
    let error = source_error(&fleet_inventory("gunicorn", "USR2"), play, &[]);
    assert_eq!(
        error.message,
        "`signal: USR2` cannot be used with `unit`: the new master is the old one's child, \
         and systemd stops the service when the old master exits (reload.signal on host web2)"
    );
    assert_eq!((error.location.line, error.location.column), (4, 12));
}
