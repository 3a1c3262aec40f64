//! `~/.ssh/config` (or `-F FILE`) as OpenSSH reads it, end to end: a config
//! that starts with global options and an `Include` still applies to the
//! hosts, its `UserKnownHostsFile` is the one herd checks keys against
//! (`--known-hosts` still wins), `Match exec` runs its command as ssh
//! does, and a config herd cannot read stops the run at file:line:col
//! before any host is contacted.

mod common;

use std::fs;

use common::{herd_with_config, Lab, LabHost, Run};

/// How many connections `host`'s sshd has seen so far.
fn connections(lab: &Lab, host: &LabHost) -> usize {
    fs::read_to_string(lab.sshd_log(&host.name))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("Connection from"))
        .count()
}

/// The run stopped with exit 2 and exactly `stderr`, and `host` saw no
/// connection beyond the `before` it had seen already.
fn assert_stopped_before_any_host(
    run: &Run,
    stderr: &str,
    lab: &Lab,
    host: &LabHost,
    before: usize,
) {
    run.assert_code(2);
    assert_eq!(run.stderr(), stderr, "{run}");
    assert_eq!(
        connections(lab, host),
        before,
        "a host was contacted\n{run}"
    );
}

/// The words of `app1`'s output line, after its `app1:` prefix.
fn app1_fields(run: &Run) -> Vec<&str> {
    let line = run
        .stdout()
        .lines()
        .find(|l| l.starts_with("app1: "))
        .unwrap_or_else(|| panic!("no output from app1\n{run}"));
    line.split_whitespace().collect()
}

/// An inventory that names `app1` only: everything else comes from the config.
fn alias_inventory(lab: &Lab) -> std::path::PathBuf {
    lab.write("aliases.yml", "all:\n  hosts:\n    app1:\n")
}

#[test]
fn a_config_that_starts_with_global_options_and_an_include_applies() {
    let lab = Lab::up(1);
    let host = lab.host("host01").clone();
    // The host's block lives in an included file, found by a glob; the user,
    // key and known_hosts come from the options before any Host line.
    lab.write(
        "ssh_config.d/10-app.conf",
        &format!(
            "Host app1 !app2\n  HostName {}\n  Port {}\n",
            host.address, host.ssh_port
        ),
    );
    lab.write("ssh_config.d/20-other.conf", "Host *\n  Port 1\n");
    let config = lab.write(
        "ssh_config",
        &format!(
            "# global options first, as most generated configs have them\n\
             User={}\n\
             IdentityFile {}\n\
             UserKnownHostsFile \"{}\" ~/.ssh/known_hosts2\n\
             ServerAliveInterval 30\n\
             Include {}/ssh_config.d/*.conf\n\
             \n\
             Host *\n  User not-this-one\n",
            lab.user(),
            lab.private_key().display(),
            lab.known_hosts().display(),
            lab.dir().display(),
        ),
    );
    let inventory = alias_inventory(&lab);

    let run = herd_with_config("exec", &config, &inventory)
        .args(["--", "echo \"$USER $SSH_CONNECTION\""])
        .run();

    run.assert_code(0);
    let fields = app1_fields(&run);
    assert_eq!(fields.get(1), Some(&lab.user()), "{run}");
    assert_eq!(
        fields.get(4..6),
        Some(&[host.address.as_str(), &host.ssh_port.to_string()][..]),
        "{run}"
    );
    let hosts = herd_with_config("hosts", &config, &inventory).run();
    hosts.assert_code(0);
    assert_eq!(
        hosts.stdout(),
        format!("app1  {}@{}:{}\n", lab.user(), host.address, host.ssh_port),
        "{hosts}"
    );
}

#[test]
fn the_configs_user_known_hosts_file_is_checked_and_known_hosts_flag_wins() {
    let lab = Lab::up(1);
    let host = lab.host("host01").clone();
    // A known_hosts that holds another key for the host.
    let impostor = lab.dir().join("impostor");
    let status = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&impostor)
        .status()
        .expect("ssh-keygen");
    assert!(status.success());
    let public = fs::read_to_string(impostor.with_extension("pub")).unwrap();
    let blob = public.split_whitespace().nth(1).unwrap();
    let forged = lab.write(
        "forged_known_hosts",
        &format!("{} ssh-ed25519 {blob}\n", host.known_hosts_name()),
    );
    let config = lab.write(
        "ssh_config",
        &format!(
            "Host app1\n  HostName {}\n  Port {}\n  User {}\n  IdentityFile {}\n  UserKnownHostsFile {}\n",
            host.address,
            host.ssh_port,
            lab.user(),
            lab.private_key().display(),
            forged.display()
        ),
    );
    let inventory = alias_inventory(&lab);
    let exec = |extra: &[&str]| {
        herd_with_config("exec", &config, &inventory)
            .args(extra)
            .args(["--", "echo reached"])
            .run()
    };

    let refused = exec(&[]);

    refused.assert_code(1);
    let expected = format!(
        "app1: UNREACHABLE: HOST KEY CHANGED for {}: it does not match line 1 of {}",
        host.known_hosts_name(),
        forged.display()
    );
    assert!(refused.stderr().contains(&expected), "{refused}");

    let known_hosts = lab.known_hosts().to_string_lossy().into_owned();
    let accepted = exec(&["--known-hosts", &known_hosts]);

    accepted.assert_code(0);
    assert_eq!(accepted.stdout(), "app1: reached\n", "{accepted}");
}

#[test]
fn a_config_herd_cannot_read_stops_the_run_at_its_line_before_any_host() {
    let lab = Lab::up(1);
    let host = lab.host("host01").clone();
    lab.write(
        "included.conf",
        "Host app1\n  Port 22\n\n  Match localnetwork 10.0.0.0/8\n    ProxyJump gw\n",
    );
    let config = lab.write(
        "ssh_config",
        &format!(
            "Include {}/included.conf\nHost *\n  HostName {}\n",
            lab.dir().display(),
            host.address
        ),
    );
    let before = connections(&lab, &host);

    let run = herd_with_config("exec", &config, lab.inventory())
        .args(["--", "true"])
        .run();

    let included = lab.dir().join("included.conf");
    assert_stopped_before_any_host(
        &run,
        &format!(
            "error: herd cannot evaluate `Match localnetwork`; use Host or Match host/user\n  \
             --> {}:4:9\n  |\n4 |   Match localnetwork 10.0.0.0/8\n  |         ^\n",
            included.display()
        ),
        &lab,
        &host,
        before,
    );
}

#[test]
fn match_exec_blocks_apply_when_their_command_succeeds() {
    let lab = Lab::up(1);
    let host = lab.host("host01").clone();
    // As agent recipes have it: a block that applies when a socket exists.
    let socket = lab.dir().join("agent.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let config = lab.write(
        "ssh_config",
        &format!(
            "User {}\nIdentityFile {}\nUserKnownHostsFile {}\n\
             Match host * exec \"test -S {}\"\n  HostName {}\n\
             Match host app1 exec \"test -e {}/absent-%n\"\n  Port 1\n\
             Host app1\n  Port {}\n  HostName 192.0.2.1\n",
            lab.user(),
            lab.private_key().display(),
            lab.known_hosts().display(),
            socket.display(),
            host.address,
            lab.dir().display(),
            host.ssh_port,
        ),
    );
    let inventory = alias_inventory(&lab);

    let run = herd_with_config("exec", &config, &inventory)
        .args(["--", "echo \"$SSH_CONNECTION\""])
        .run();

    run.assert_code(0);
    let fields = app1_fields(&run);
    assert_eq!(
        fields.get(3..5),
        Some(&[host.address.as_str(), &host.ssh_port.to_string()][..]),
        "{run}"
    );
}

#[test]
fn a_match_exec_that_hangs_stops_the_run_at_its_line_before_any_host() {
    let lab = Lab::up(1);
    let host = lab.host("host01").clone();
    let config = lab.write(
        "ssh_config",
        "Host *\n  Port 22\nMatch exec \"sleep 60\"\n  Port 1\n",
    );
    let before = connections(&lab, &host);

    let run = herd_with_config("exec", &config, lab.inventory())
        .args(["--", "true"])
        .run();

    assert_stopped_before_any_host(
        &run,
        &format!(
            "error: host host01: the `Match exec` command `sleep 60` did not finish within 10s\n  \
             --> {}:3:7\n  |\n3 | Match exec \"sleep 60\"\n  |       ^\n",
            config.display()
        ),
        &lab,
        &host,
        before,
    );
}

#[test]
fn a_config_that_is_not_utf8_names_its_byte_and_line() {
    let lab = Lab::up(1);
    let host = lab.host("host01").clone();
    let config = lab.dir().join("ssh_config");
    fs::write(&config, b"Host *\n  User d\xe9ploy\n").unwrap();
    let before = connections(&lab, &host);

    let run = herd_with_config("exec", &config, lab.inventory())
        .args(["--", "true"])
        .run();

    assert_stopped_before_any_host(
        &run,
        &format!(
            "error: -F {}: it is not UTF-8 text: the byte at offset 15 (line 2) is not valid UTF-8\n",
            config.display()
        ),
        &lab,
        &host,
        before,
    );
}

/// A config whose `Match exec` passes `%h` and `%n` to the shell, as the
/// logging recipes do, and the file its command writes to.
fn logging_exec_config(lab: &Lab) -> (std::path::PathBuf, std::path::PathBuf) {
    let log = lab.dir().join("exec.log");
    let config = lab.write(
        "ssh_config",
        &format!("Match exec \"echo %h %n >> {}\"\n", log.display()),
    );
    (config, log)
}

/// `herd hosts`, `herd plan` and `herd exec` with `inventory` and `config`
/// each stop with exit 2 and exactly `stderr`; no `Match exec` ran, so
/// `canary` was not created, and the lab host saw no connection.
fn assert_refused_before_any_shell(
    lab: &Lab,
    config: &std::path::Path,
    inventory: &std::path::Path,
    log: &std::path::Path,
    canary: &std::path::Path,
    stderr: &str,
) {
    let host = lab.host("host01").clone();
    let before = connections(lab, &host);
    let playbook = lab.write("play.yml", "hosts: all\nsteps:\n  - run: true\n");
    let runs = [
        herd_with_config("hosts", config, inventory).run(),
        herd_with_config("plan", config, inventory)
            .arg(&playbook)
            .run(),
        herd_with_config("exec", config, inventory)
            .args(["--", "true"])
            .run(),
    ];
    for run in &runs {
        assert!(
            !canary.exists(),
            "the name reached a shell on the controller\n{run}"
        );
        assert_stopped_before_any_host(run, stderr, lab, &host, before);
    }
    assert!(!log.exists(), "a `Match exec` command ran");
}

#[test]
fn an_inventory_name_with_shell_metacharacters_never_reaches_a_match_exec_shell() {
    let lab = Lab::up(1);
    let (config, log) = logging_exec_config(&lab);
    let canary = lab.dir().join("canary-name");
    // No space: a name with one is refused before ssh's rules are looked at.
    let name = format!("evil$(touch${{IFS}}{})", canary.display());
    let inventory = lab.edited_inventory("evil-name.yml", |text| {
        text.replacen(
            "      hosts:\n        host01:",
            &format!("      hosts:\n        \"{name}\":\n        host01:"),
            1,
        )
    });

    assert_refused_before_any_shell(
        &lab,
        &config,
        &inventory,
        &log,
        &canary,
        &format!(
            "error: host {name}: hostname `{name}` contains invalid characters: it has `$`; ssh refuses it too\n  \
             --> {}:11:9\n   |\n11 |         \"{name}\":\n   |         ^\n",
            inventory.display()
        ),
    );
}

#[test]
fn an_ansible_host_with_shell_metacharacters_never_reaches_a_match_exec_shell() {
    let lab = Lab::up(1);
    let (config, log) = logging_exec_config(&lab);
    let canary = lab.dir().join("canary-address");
    let address = format!("h;touch {};", canary.display());
    let inventory = lab.edited_inventory("evil-address.yml", |text| {
        text.replacen(
            "      hosts:\n        host01:",
            &format!(
                "      hosts:\n        semi: {{ ansible_host: \"{address}\" }}\n        host01:"
            ),
            1,
        )
    });

    assert_refused_before_any_shell(
        &lab,
        &config,
        &inventory,
        &log,
        &canary,
        &format!(
            "error: host semi: hostname `{address}` contains invalid characters: it has `;`; ssh refuses it too\n  \
             --> {}:11:31\n   |\n11 |         semi: {{ ansible_host: \"{address}\" }}\n   |                               ^\n",
            inventory.display()
        ),
    );
}
