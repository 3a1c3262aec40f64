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
    assert_eq!((error.location.line, error.location.column), (4, 5));

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
    assert_eq!((error.location.line, error.location.column), (3, 3));
}
