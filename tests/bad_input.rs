//! Bad input ends herd with exit code 2 and a message naming `file:line:col`,
//! before any host is contacted. "Not contacted" is measured: the inventory's
//! only host is a TCP listener this test holds, and it must see no connection.

mod common;

use std::path::Path;

use common::{write_file, FakeHost, Herd, Run};

/// A directory holding `inventory.yml` whose one host, in group `web`, is `fake`.
/// Line 5, column 9 is where the host's name starts.
fn workspace(fake: &FakeHost, host_name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_file(
        dir.path(),
        "inventory.yml",
        &format!(
            "all:\n  children:\n    web:\n      hosts:\n        {host_name}: {{ ansible_host: 127.0.0.1, ansible_port: {} }}\n",
            fake.port()
        ),
    );
    dir
}

const GOOD_PLAYBOOK: &str = "name: Good\nhosts: web\nsteps:\n  - run: echo hi\n";

/// `herd run playbook.yml -i inventory.yml ARGS` in `dir` (so paths print relative).
fn run_in(dir: &Path, playbook: &str, args: &[&str]) -> Run {
    write_file(dir, "playbook.yml", playbook);
    Herd::new()
        .current_dir(dir)
        .args([
            "run",
            "playbook.yml",
            "-i",
            "inventory.yml",
            "--connect-timeout",
            "1s",
        ])
        .args(args)
        .run()
}

/// Exit 2, the location named, nothing contacted.
fn assert_refused(run: &Run, fake: &FakeHost, location: &str) {
    run.assert_code(2);
    assert!(run.stderr().starts_with("error: "), "{run}");
    assert!(
        run.stderr().contains(&format!("  --> {location}\n")),
        "expected `--> {location}`\n{run}"
    );
    assert_eq!(run.stdout(), "", "{run}");
    assert_eq!(
        fake.connections(),
        0,
        "herd connected to the host despite bad input\n{run}"
    );
}

#[test]
fn the_fake_host_does_count_connections() {
    // Control: with good input herd does connect, so a zero in the tests below
    // means "not contacted", not "the listener cannot see connections".
    let fake = FakeHost::new();
    let dir = workspace(&fake, "target");

    let run = run_in(dir.path(), GOOD_PLAYBOOK, &[]);

    run.assert_code(1);
    assert!(fake.connections() >= 1, "{run}");
}

#[test]
fn broken_yaml_in_a_playbook() {
    let fake = FakeHost::new();
    let dir = workspace(&fake, "target");

    let run = run_in(
        dir.path(),
        "name: x\nhosts: web\nsteps:\n  - run: echo hi\n   name: bad\n",
        &[],
    );

    assert_refused(&run, &fake, "playbook.yml:5:4");
}

#[test]
fn unknown_key_in_a_step() {
    let fake = FakeHost::new();
    let dir = workspace(&fake, "target");

    let run = run_in(
        dir.path(),
        "name: x\nhosts: web\nsteps:\n  - run: echo hi\n    colour: red\n",
        &[],
    );

    assert_refused(&run, &fake, "playbook.yml:5:5");
    assert_eq!(
        run.stderr(),
        "\
error: steps[0]: unknown key `colour`, expected one of `name`, `run`, `upload`, `archive`, `cwd`, `env`, `timeout`, `become`, `become_user`, `once`, `capture`, `ignore_errors`, `local`, `when`
  --> playbook.yml:5:5
  |
5 |     colour: red
  |     ^
"
    );
}

#[test]
fn wrong_type_for_a_timeout() {
    let fake = FakeHost::new();
    let dir = workspace(&fake, "target");

    let run = run_in(
        dir.path(),
        "name: x\nhosts: web\nsteps:\n  - run: echo hi\n    timeout: soon\n",
        &[],
    );

    assert_refused(&run, &fake, "playbook.yml:5:14");
    assert_eq!(
        run.stderr(),
        "\
error: steps[0].timeout: invalid duration `soon`: expected a number with a unit, like 30s, 5m or 1h
  --> playbook.yml:5:14
  |
5 |     timeout: soon
  |              ^
"
    );
}

#[test]
fn a_zero_time_limit_in_a_playbook_is_refused_where_it_is() {
    let fake = FakeHost::new();
    let dir = workspace(&fake, "target");
    for (text, at, key) in [
        (
            "hosts: web\nsteps:\n  - run: sleep 3\n    timeout: 0s\n",
            "4:14",
            "steps[0].timeout",
        ),
        (
            "hosts: web\nhooks: {timeout: 0}\nsteps:\n  - run: echo hi\n",
            "2:18",
            "hooks.timeout",
        ),
        (
            "hosts: web\nsteps:\n  - run: echo hi\nvalidate: {timeout: 0ms, run: 'true'}\n",
            "4:21",
            "validate.timeout",
        ),
    ] {
        let run = run_in(dir.path(), text, &[]);
        assert_refused(&run, &fake, &format!("playbook.yml:{at}"));
        assert!(
            run.stderr().starts_with(&format!(
                "error: {key}: a limit of 0 leaves no time at all: give more than 0\n"
            )),
            "{text}\n{run}"
        );
    }
}

#[test]
fn undefined_template_variable() {
    let fake = FakeHost::new();
    let dir = workspace(&fake, "target");

    let run = run_in(
        dir.path(),
        "name: x\nhosts: web\nvars:\n  release: v2\nsteps:\n  - run: echo {{ relase }}\n",
        &[],
    );

    assert_refused(&run, &fake, "playbook.yml:6:18");
    assert_eq!(
        run.stderr(),
        "\
error: undefined variable `relase` in run of steps[0] on host target
  --> playbook.yml:6:18
  |
6 |   - run: echo {{ relase }}
  |                  ^
"
    );
}

#[test]
fn unknown_group_in_limit() {
    let fake = FakeHost::new();
    let dir = workspace(&fake, "target");

    let run = run_in(dir.path(), GOOD_PLAYBOOK, &["--limit", "dbservers"]);

    assert_refused(&run, &fake, "--limit:1:1");
    assert!(run.stderr().contains("`dbservers`"), "{run}");
}

#[test]
fn missing_limit_file() {
    let fake = FakeHost::new();
    let dir = workspace(&fake, "target");

    let run = run_in(dir.path(), GOOD_PLAYBOOK, &["--limit", "web,@retry.txt"]);

    assert_refused(&run, &fake, "--limit:1:5");
    assert!(
        run.stderr().starts_with(
            "error: cannot read limit file `retry.txt`: No such file or directory (os error 2)\n"
        ),
        "{run}"
    );
}

#[test]
fn reversed_host_range_in_the_inventory() {
    let fake = FakeHost::new();
    let dir = workspace(&fake, "web[10:01]");

    let run = run_in(dir.path(), GOOD_PLAYBOOK, &[]);

    assert_refused(&run, &fake, "inventory.yml:5:12");
    assert!(run.stderr().contains("[10:01]"), "{run}");
}

#[test]
fn batch_of_zero_hosts() {
    let fake = FakeHost::new();
    let dir = workspace(&fake, "target");

    let run = run_in(dir.path(), GOOD_PLAYBOOK, &["--batch", "0"]);

    run.assert_code(2);
    assert!(
        run.stderr().starts_with(
            "error: invalid value '0' for '--batch <BATCH>': invalid batch size `0`: every batch has at least one host\n"
        ),
        "{run}"
    );
    assert_eq!(fake.connections(), 0, "{run}");
}

/// `inventory.yml` in a new directory, with `PORT` replaced by the fake host's port.
fn workspace_with(fake: &FakeHost, inventory: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let text = inventory.replace("PORT", &fake.port().to_string());
    write_file(dir.path(), "inventory.yml", &text);
    dir
}

#[test]
fn a_duplicate_play_var_names_both_places() {
    let fake = FakeHost::new();
    let dir = workspace(&fake, "target");

    let run = run_in(
        dir.path(),
        "name: x\nhosts: web\nvars:\n  release: v1\n  app: demo\n  release: v2\nsteps:\n  - run: echo {{ release }}\n",
        &[],
    );

    assert_refused(&run, &fake, "playbook.yml:6:3");
    assert_eq!(
        run.stderr(),
        "\
error: duplicate key `release`: it is already written at line 4, column 3
  --> playbook.yml:6:3
  |
6 |   release: v2
  |   ^
"
    );
}

#[test]
fn a_duplicate_env_key_in_a_step() {
    let fake = FakeHost::new();
    let dir = workspace(&fake, "target");

    let run = run_in(
        dir.path(),
        "name: x\nhosts: web\nsteps:\n  - run: env\n    env: { A: '1', B: '2', A: '3' }\n",
        &[],
    );

    assert_refused(&run, &fake, "playbook.yml:5:28");
    assert!(
        run.stderr()
            .starts_with("error: duplicate key `A`: it is already written at line 5, column 12\n"),
        "{run}"
    );
}

#[test]
fn a_host_written_twice_in_one_group() {
    let fake = FakeHost::new();
    let dir = workspace_with(
        &fake,
        "web:\n  hosts:\n    target: { ansible_host: 127.0.0.1, ansible_port: PORT }\n    target: { ansible_host: 127.0.0.2 }\n",
    );

    let run = run_in(dir.path(), GOOD_PLAYBOOK, &[]);

    assert_refused(&run, &fake, "inventory.yml:4:5");
    assert!(
        run.stderr().starts_with(
            "error: duplicate key `target`: it is already written at line 3, column 5\n"
        ),
        "{run}"
    );
}

#[test]
fn merge_keys_give_the_host_its_address() {
    // Without merge keys the host would be `target`, a name that does not
    // resolve, and the listener would see nothing.
    let fake = FakeHost::new();
    let dir = workspace_with(
        &fake,
        "all:\n  vars:\n    local: &local\n      ansible_host: 127.0.0.1\n      ansible_port: PORT\n  children:\n    web:\n      hosts:\n        target:\n          <<: *local\n",
    );

    let run = run_in(dir.path(), GOOD_PLAYBOOK, &[]);

    run.assert_code(1);
    assert!(fake.connections() >= 1, "{run}");
}

#[test]
fn zero_forks_or_a_status_that_is_no_http_status_is_refused() {
    let fake = FakeHost::new();
    let dir = workspace(&fake, "target");
    write_file(dir.path(), "playbook.yml", GOOD_PLAYBOOK);
    for (args, said) in [
        (
            &["run", "playbook.yml", "--forks", "0"][..],
            "invalid value '0' for '--forks <FORKS>': no host would ever be worked on: give 1 or more",
        ),
        (
            &["reload", "--pidfile", "/run/app.pid", "--http", "http://127.0.0.1:9/", "--status", "999"][..],
            "invalid value '999' for '--status <STATUS>': 999 is not in 100..=599",
        ),
    ] {
        let run = Herd::new()
            .current_dir(dir.path())
            .args(args)
            .args(["-i", "inventory.yml"])
            .run();
        run.assert_code(2);
        assert!(run.stderr().starts_with(&format!("error: {said}\n")), "{run}");
        assert_eq!(fake.connections(), 0, "{run}");
    }
    let run = run_in(
        dir.path(),
        "hosts: web\nsteps:\n  - run: echo hi\nvalidate: {http: {url: 'http://127.0.0.1:9/', status: 0}}\n",
        &[],
    );
    assert_refused(&run, &fake, "playbook.yml:4:18");
    assert!(
        run.stderr()
            .starts_with("error: validate.http: 0 is not an HTTP status: give 100 to 599\n"),
        "{run}"
    );
}

#[test]
fn a_zero_connect_timeout_is_refused() {
    let fake = FakeHost::new();
    let dir = workspace(&fake, "target");

    write_file(dir.path(), "playbook.yml", GOOD_PLAYBOOK);
    let run = Herd::new()
        .current_dir(dir.path())
        .args(["run", "playbook.yml", "-i", "inventory.yml"])
        .args(["--connect-timeout", "0s"])
        .run();

    run.assert_code(2);
    assert!(
        run.stderr()
            .contains("a limit of `0s` leaves no time at all"),
        "{run}"
    );
    assert_eq!(fake.connections(), 0, "{run}");
}

#[test]
fn a_known_hosts_file_that_is_not_a_string() {
    let fake = FakeHost::new();
    let dir = workspace_with(
        &fake,
        "web:\n  hosts:\n    target: { ansible_host: 127.0.0.1, ansible_port: PORT }\n  vars:\n    herd_known_hosts: 42\n",
    );

    let run = run_in(dir.path(), GOOD_PLAYBOOK, &[]);

    assert_refused(&run, &fake, "inventory.yml:5:23");
    assert_eq!(
        run.stderr(),
        "\
error: host target: `herd_known_hosts` must be a path written as a string, not 42
  --> inventory.yml:5:23
  |
5 |     herd_known_hosts: 42
  |                       ^
"
    );
}

#[test]
fn reserved_names_cannot_be_set_with_e() {
    let fake = FakeHost::new();
    let dir = workspace(&fake, "target");

    for pair in ["env=prod", "inventory_hostname=other"] {
        let run = run_in(dir.path(), GOOD_PLAYBOOK, &["-e", pair]);

        run.assert_code(2);
        let name = pair.split('=').next().unwrap();
        assert_eq!(
            run.stderr(),
            format!("error: -e {pair}: `{name}` is a name herd sets itself and cannot be given\n"),
            "{run}"
        );
    }
    assert_eq!(fake.connections(), 0);
}

#[test]
fn a_playbook_that_is_not_utf8_names_the_byte() {
    let fake = FakeHost::new();
    let dir = workspace(&fake, "target");
    std::fs::write(
        dir.path().join("playbook.yml"),
        b"name: x\nhosts: web\nsteps:\n  - run: echo caf\xe9\n",
    )
    .unwrap();

    let run = Herd::new()
        .current_dir(dir.path())
        .args(["run", "playbook.yml", "-i", "inventory.yml"])
        .run();

    run.assert_code(2);
    assert_eq!(
        run.stderr(),
        "error: cannot read playbook playbook.yml: it is not UTF-8 text: the byte at offset 43 (line 4) is not valid UTF-8\n",
        "{run}"
    );
    assert_eq!(fake.connections(), 0, "{run}");
}

#[test]
fn an_unwritable_report_path_is_refused_before_connecting() {
    let fake = FakeHost::new();
    let dir = workspace(&fake, "target");

    let run = run_in(
        dir.path(),
        GOOD_PLAYBOOK,
        &["--report", "missing/report.xml"],
    );

    run.assert_code(2);
    assert!(
        run.stderr()
            .starts_with("error: --report missing/report.xml: cannot write there: "),
        "{run}"
    );
    assert_eq!(fake.connections(), 0, "{run}");
}

#[test]
fn a_bad_connection_variable_of_a_flow_style_host_is_pointed_at() {
    let fake = FakeHost::new();
    let dir = workspace_with(
        &fake,
        "web:\n  hosts:\n    target: { ansible_host: 127.0.0.1, ansible_port: x }\n",
    );

    let run = run_in(dir.path(), GOOD_PLAYBOOK, &[]);

    assert_refused(&run, &fake, "inventory.yml:3:54");
    assert_eq!(
        run.stderr(),
        "\
error: host target: `ansible_port: x` is not a TCP port (1-65535)
  --> inventory.yml:3:54
  |
3 |     target: { ansible_host: 127.0.0.1, ansible_port: x }
  |                                                      ^
"
    );
}

#[test]
fn a_bad_port_is_reported_on_its_own_line() {
    let fake = FakeHost::new();
    let dir = workspace_with(
        &fake,
        "web:\n  hosts:\n    good:\n      ansible_host: 127.0.0.1\n      ansible_port: PORT\n    target:\n      ansible_host: 127.0.0.1\n      # the typo below\n      ansible_port: 2x2\n",
    );

    let run = run_in(dir.path(), GOOD_PLAYBOOK, &[]);

    assert_refused(&run, &fake, "inventory.yml:9:21");
}

#[test]
fn the_same_text_twice_points_at_the_one_in_use() {
    // Both hosts write `ansible_user: ''`; `good`'s is overridden by its
    // own group, so only `target`'s is wrong.
    let fake = FakeHost::new();
    let dir = workspace_with(
        &fake,
        "all:\n  children:\n    fixed:\n      hosts:\n        good: { ansible_user: '', ansible_host: 127.0.0.1, ansible_port: PORT }\n      vars:\n        ansible_user: deploy\n    web:\n      hosts:\n        target: { ansible_user: '', ansible_host: 127.0.0.1, ansible_port: PORT }\n",
    );

    let run = run_in(dir.path(), GOOD_PLAYBOOK, &[]);

    assert_refused(&run, &fake, "inventory.yml:10:33");
    assert!(
        run.stderr()
            .starts_with("error: host target: `ansible_user` is empty\n"),
        "{run}"
    );
}

/// `release:` refuses what could escape its directory or remove the
/// release being deployed, at the key, before any host.
#[test]
fn bad_release_settings_are_pointed_at() {
    let fake = FakeHost::new();
    let dir = workspace(&fake, "target");
    let release = |settings: &str| {
        format!(
            "name: x\nhosts: web\nrelease:\n  path: /srv/app\n{settings}steps:\n  - run: echo hi\n"
        )
    };
    let cases = [
        (
            "  id: ../v2\n",
            "playbook.yml:5:7",
            "release id `../v2` is not a safe file name",
        ),
        (
            "  id: a/b\n",
            "playbook.yml:5:7",
            "release id `a/b` is not a safe file name",
        ),
        (
            "  keep: 0\n",
            "playbook.yml:5:9",
            "`keep: 0` would remove the release being deployed",
        ),
        ("  keep: -1\n", "playbook.yml:5:9", "release.keep"),
        (
            "  shared: [.env, ../etc/]\n",
            "playbook.yml:5:18",
            "shared path `../etc/` must be relative",
        ),
        (
            "  colour: red\n",
            "playbook.yml:5:3",
            "unknown key `colour`",
        ),
    ];
    for (settings, location, message) in cases {
        let run = run_in(dir.path(), &release(settings), &[]);
        assert_refused(&run, &fake, location);
        assert!(run.stderr().contains(message), "{settings}\n{run}");
    }

    // A release id from `-e` is checked where the playbook renders it.
    let templated = release("  id: \"{{ version }}\"\n");
    let run = run_in(dir.path(), &templated, &["-e", "version=../../x"]);
    assert_refused(&run, &fake, "playbook.yml:5:7");
    assert!(
        run.stderr()
            .contains("release id `../../x` is not a safe file name: use letters, digits"),
        "{run}"
    );

    // A relative path would land wherever the login shell starts.
    let relative = "name: x\nhosts: web\nrelease:\n  path: app\nsteps:\n  - run: echo hi\n";
    let run = run_in(dir.path(), relative, &[]);
    assert_refused(&run, &fake, "playbook.yml:4:9");
    assert!(
        run.stderr().contains("it must be an absolute path"),
        "{run}"
    );
}

/// `herd rollback` and `herd releases` need `release:`, and `--to` a
/// safe release id, before any host.
#[test]
fn rollback_input_is_checked_before_any_host() {
    let fake = FakeHost::new();
    let dir = workspace(&fake, "target");
    write_file(dir.path(), "playbook.yml", GOOD_PLAYBOOK);
    for command in ["rollback", "releases"] {
        let run = Herd::new()
            .current_dir(dir.path())
            .args([command, "playbook.yml", "-i", "inventory.yml"])
            .run();
        assert_refused(&run, &fake, "playbook.yml:1:1");
        assert!(
            run.stderr()
                .contains("this command needs `release:` in the playbook"),
            "{run}"
        );
    }
    let run = Herd::new()
        .current_dir(dir.path())
        .args([
            "rollback",
            "playbook.yml",
            "-i",
            "inventory.yml",
            "--to",
            "v1/../../x",
        ])
        .run();
    run.assert_code(2);
    assert!(
        run.stderr()
            .contains("--to: release id `v1/../../x` is not a safe file name"),
        "{run}"
    );
    assert_eq!(fake.connections(), 0, "{run}");
}

#[test]
fn a_local_step_that_uploads() {
    let fake = FakeHost::new();
    let dir = workspace(&fake, "target");

    let run = run_in(
        dir.path(),
        "name: x\nhosts: web\nsteps:\n  - upload: { src: playbook.yml, dest: /tmp/x }\n    local: true\n",
        &[],
    );

    assert_refused(&run, &fake, "playbook.yml:5:12");
    assert_eq!(
        run.stderr(),
        "\
error: a `local` step runs on the controller: it cannot have `upload`
  --> playbook.yml:5:12
  |
5 |     local: true
  |            ^
"
    );
}

#[test]
fn an_unknown_hook() {
    let fake = FakeHost::new();
    let dir = workspace(&fake, "target");

    let run = run_in(
        dir.path(),
        "name: x\nhosts: web\nhooks:\n  after_all: echo done\nsteps:\n  - run: echo hi\n",
        &[],
    );

    assert_refused(&run, &fake, "playbook.yml:4:3");
    assert_eq!(
        run.stderr(),
        "\
error: hooks: unknown key `after_all`, expected one of `before_batch`, `after_batch`, `on_success`, `on_failure`, `timeout`
  --> playbook.yml:4:3
  |
4 |   after_all: echo done
  |   ^
"
    );
}

/// With `release:`, herd's own release variables cannot be captured into
/// (a capture would steer where herd's steps remove files), and two names
/// for one machine cannot share one release path.
#[test]
fn release_variables_and_paths_cannot_be_shared_or_steered() {
    let fake = FakeHost::new();
    let dir = workspace(&fake, "target");
    let capture = "name: x\nhosts: web\nrelease: { path: /srv/app }\nsteps:\n  - run: echo ../shared\n    capture: herd_release_id\n";
    let run = run_in(dir.path(), capture, &[]);
    assert_refused(&run, &fake, "playbook.yml:6:14");
    assert!(
        run.stderr()
            .contains("`capture: herd_release_id` is a name herd sets itself"),
        "{run}"
    );

    let twice = workspace_with(
        &fake,
        &format!(
            "all:\n  children:\n    web:\n      hosts:\n        a: {{ ansible_host: 127.0.0.1, ansible_port: {port} }}\n        b: {{ ansible_host: 127.0.0.1, ansible_port: {port} }}\n",
            port = fake.port()
        ),
    );
    let run = run_in(
        twice.path(),
        "name: x\nhosts: web\nrelease: { path: /srv/app }\nsteps:\n  - run: echo hi\n",
        &[],
    );
    run.assert_code(2);
    assert!(
        run.stderr().contains(&format!(
            "hosts a and b are one machine (127.0.0.1:{}) with one release path /srv/app",
            fake.port()
        )),
        "{run}"
    );
    assert_eq!(fake.connections(), 0, "{run}");
}

/// A rollback runs no steps: a `validate` that reads a capture cannot be
/// rendered, and that is found before any host is contacted.
#[test]
fn a_rollback_whose_validate_reads_a_capture_is_refused_before_any_host() {
    let fake = FakeHost::new();
    let dir = workspace(&fake, "target");
    write_file(
        dir.path(),
        "playbook.yml",
        "name: x\nhosts: web\nrelease: { path: /srv/app }\nsteps:\n  - run: cat VERSION\n    capture: built\nvalidate:\n  http: { url: \"http://127.0.0.1:8000/\", contains: \"{{ built }}\" }\n",
    );
    let run = Herd::new()
        .current_dir(dir.path())
        .args([
            "rollback",
            "playbook.yml",
            "-i",
            "inventory.yml",
            "--to",
            "v1",
        ])
        .run();
    assert_refused(&run, &fake, "playbook.yml:8:56");
    assert!(run.stderr().contains("undefined variable `built`"), "{run}");
}

#[test]
fn a_templated_server_unknown_on_one_host_is_refused_before_any_host() {
    let first = FakeHost::new();
    let second = FakeHost::new();
    let dir = tempfile::tempdir().unwrap();
    write_file(
        dir.path(),
        "inventory.yml",
        &format!(
            "web:\n  hosts:\n    web1: {{ ansible_host: 127.0.0.1, ansible_port: {}, app_server: gunicorn }}\n    web2: {{ ansible_host: 127.0.0.1, ansible_port: {}, app_server: gunicron }}\n",
            first.port(),
            second.port()
        ),
    );

    let run = run_in(
        dir.path(),
        "name: x\nhosts: web\nreload:\n  server: \"{{ app_server }}\"\n  pidfile: /run/app.pid\n",
        &[],
    );

    assert_refused(&run, &first, "playbook.yml:4:12");
    assert_eq!(second.connections(), 0, "{run}");
    let herd_reloads = run
        .stderr()
        .split("herd reloads ")
        .nth(1)
        .and_then(|rest| rest.split(" (reload.server").next())
        .unwrap_or_default();
    assert!(herd_reloads.contains("`gunicorn`"), "{run}");
    assert_eq!(
        run.stderr(),
        format!(
            "\
error: unknown server `gunicron`: herd reloads {herd_reloads} (reload.server on host web2)
  --> playbook.yml:4:12
  |
4 |   server: \"{{{{ app_server }}}}\"
  |            ^
"
        )
    );
}
