//! Hosts behind a bastion (ProxyJump): herd connects to the bastion once and
//! reaches every host behind it over direct-tcpip channels of that one
//! connection; the bastion's sshd log shows each forwarded connection.

mod common;

use std::fs;

use common::{herd_with_config, Herd, Lab, LabHost};

fn forwarded_to(log: &str, address: &str, port: u16) -> usize {
    let wanted = format!(
        "server_request_direct_tcpip: originator 127.0.0.1 port 0, target {address} port {port}"
    );
    log.lines().filter(|l| l.contains(&wanted)).count()
}

/// The bastion (`host01`) forwarded exactly one connection to `behind`.
fn assert_forwarded_once(lab: &Lab, behind: &LabHost) {
    let log = fs::read_to_string(lab.sshd_log("host01")).unwrap();
    assert_eq!(
        forwarded_to(&log, &behind.address, behind.ssh_port),
        1,
        "{log}"
    );
}

fn logins(log: &str) -> usize {
    log.lines()
        .filter(|l| l.contains("Accepted publickey"))
        .count()
}

#[test]
fn hosts_behind_a_bastion_share_one_connection_to_it() {
    let lab = Lab::up(3);
    let bastion = lab.host("host01").clone();
    let jump = format!(
        "-o ProxyJump={}@{}:{}",
        lab.user(),
        bastion.address,
        bastion.ssh_port
    );
    let inventory = lab.edited_inventory("behind-bastion.yml", |text| {
        text.replace(
            "host02: { ",
            &format!("host02: {{ ansible_ssh_common_args: '{jump}', "),
        )
        .replace(
            "host03: { ",
            &format!("host03: {{ ansible_ssh_common_args: '{jump}', "),
        )
    });
    let playbook = lab.write(
        "mark.yml",
        "hosts: web\nsteps:\n  - run: echo \"$SSH_CONNECTION\" > {{ app_dir }}/reached-over\n",
    );

    let run = Herd::new()
        .args(["run"])
        .arg(&playbook)
        .arg("-i")
        .arg(&inventory)
        .args(["-l", "host02,host03"])
        .run();

    run.assert_code(0);
    let log = fs::read_to_string(lab.sshd_log("host01")).unwrap();
    for name in ["host02", "host03"] {
        let host = lab.host(name);
        // The step ran on the host behind the bastion, which saw the connection arrive.
        let seen = fs::read_to_string(lab.app_dir(name).join("reached-over")).unwrap();
        let fields: Vec<&str> = seen.split_whitespace().collect();
        assert_eq!(
            fields.get(2..4),
            Some(&[host.address.as_str(), &host.ssh_port.to_string()][..]),
            "{seen}"
        );
        assert_eq!(
            forwarded_to(&log, &host.address, host.ssh_port),
            1,
            "{name}: {run}"
        );
    }
    // One login on the bastion served both hosts (it was not itself a target).
    assert_eq!(logins(&log), 1, "{log}");
    assert!(!lab.app_dir("host01").join("reached-over").exists());
}

#[test]
fn a_dead_bastion_makes_the_hosts_behind_it_unreachable() {
    let lab = Lab::up(2);
    let bastion = lab.host("host01").clone();
    let inventory = lab.edited_inventory("behind-bastion.yml", |text| {
        text.replace(
            "host02: { ",
            &format!(
                "host02: {{ ansible_ssh_common_args: '-J {}@{}:{}', ",
                lab.user(),
                bastion.address,
                bastion.ssh_port
            ),
        )
    });
    bastion.kill_sshd();

    let run = Herd::new()
        .args(["exec", "-i"])
        .arg(&inventory)
        .args(["-l", "host02", "--", "true"])
        .run();

    run.assert_code(1);
    assert!(
        run.stderr().contains(&format!(
            "host02: UNREACHABLE: cannot connect to {}",
            lab.host("host02").address
        )),
        "{run}"
    );
    assert!(
        run.stderr().contains(&format!(
            "through bastion {}:{}",
            bastion.address, bastion.ssh_port
        )),
        "{run}"
    );
}

#[test]
fn ssh_config_aliases_hostnames_ports_and_proxyjump_apply() {
    let lab = Lab::up(2);
    let (bastion, behind) = (lab.host("host01").clone(), lab.host("host02").clone());
    let config = lab.write(
        "ssh_config",
        &format!(
            "Host gateway\n  HostName {}\n  Port {}\n  User {}\n\nHost app-behind\n  HostName {}\n  Port {}\n  User {}\n  ProxyJump gateway\n",
            bastion.address,
            bastion.ssh_port,
            lab.user(),
            behind.address,
            behind.ssh_port,
            lab.user()
        ),
    );
    // An inventory that names the host by its ssh_config alias only; the
    // bastion's user comes from its own Host block, as with OpenSSH.
    let inventory = lab.write(
        "aliases.yml",
        &format!(
            "all:\n  vars:\n    ansible_ssh_private_key_file: {}\n    herd_known_hosts: {}\n  hosts:\n    app-behind:\n",
            lab.private_key().display(),
            lab.known_hosts().display()
        ),
    );

    let run = herd_with_config("exec", &config, &inventory)
        .args(["--", "echo $SSH_CONNECTION"])
        .run();

    run.assert_code(0);
    assert!(
        run.stdout().contains("app-behind: 127.0.0.1 ")
            && run
                .stdout()
                .contains(&format!(" {} {}", behind.address, behind.ssh_port)),
        "{run}"
    );
    assert_forwarded_once(&lab, &behind);
    // `herd hosts` resolves the alias the same way, contacting nothing.
    let hosts = herd_with_config("hosts", &config, &inventory).run();
    hosts.assert_code(0);
    assert_eq!(
        hosts.stdout(),
        format!(
            "app-behind  {}@{}:{}\n",
            lab.user(),
            behind.address,
            behind.ssh_port
        ),
        "{hosts}"
    );
}

#[test]
fn a_proxyjump_from_a_config_with_global_options_match_and_include_applies() {
    let lab = Lab::up(2);
    let (bastion, behind) = (lab.host("host01").clone(), lab.host("host02").clone());
    lab.write(
        "ssh_config.d/gateway.conf",
        &format!(
            "Host gateway\n  HostName {}\n  Port {}\n",
            bastion.address, bastion.ssh_port
        ),
    );
    let config = lab.write(
        "ssh_config",
        &format!(
            "User {}\nIdentityFile {}\nUserKnownHostsFile {}\nInclude {}/ssh_config.d/*.conf\n\n\
             Match originalhost app-*,!app-direct\n  ProxyJump gateway\n\n\
             Host app-*\n  HostName {}\n  Port {}\n",
            lab.user(),
            lab.private_key().display(),
            lab.known_hosts().display(),
            lab.dir().display(),
            behind.address,
            behind.ssh_port
        ),
    );
    let inventory = lab.write("aliases.yml", "all:\n  hosts:\n    app-behind:\n");

    let run = herd_with_config("exec", &config, &inventory)
        .args(["--", "echo $SSH_CONNECTION"])
        .run();

    run.assert_code(0);
    assert!(
        run.stdout().starts_with("app-behind: 127.0.0.1 ")
            && run
                .stdout()
                .contains(&format!(" {} {}", behind.address, behind.ssh_port)),
        "{run}"
    );
    assert_forwarded_once(&lab, &behind);
}
