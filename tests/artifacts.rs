//! Artifacts: a directory (`upload`) and a tarball (`archive`) land on each
//! host whole, with their modes and symlinks; a re-run sends nothing (the
//! bytes are counted in the JSON report); a file changed on the host makes
//! the next run send the tree again; bad input is refused before any host
//! is contacted.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::{write_file, FakeHost, Herd, Lab, Run};

fn set_mode(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

fn mode_of(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
}

/// `site/`: a nested directory, an executable, a symlink. `app.tar.gz`:
/// a tarball with an executable in a subdirectory.
fn artifacts(lab: &Lab) {
    let site = lab.dir().join("site");
    write_file(&site, "index.html", "<h1>v1</h1>\n");
    write_file(&site, "static/css/app.css", "body {}\n");
    write_file(&site, "bin/run", "#!/bin/sh\necho run\n");
    set_mode(&site.join("bin/run"), 0o755);
    set_mode(&site.join("index.html"), 0o640);
    std::os::unix::fs::symlink("bin/run", site.join("start")).unwrap();

    let tree = lab.dir().join("tree");
    write_file(&tree, "app.py", "print('app v1')\n");
    write_file(&tree, "bin/serve", "#!/bin/sh\nexec python3 app.py\n");
    set_mode(&tree.join("bin/serve"), 0o755);
    tar(&tree, &lab.dir().join("app.tar.gz"));
}

/// Packs `tree` into `archive` (gzip when its name ends in `.gz`).
fn tar(tree: &std::path::Path, archive: &std::path::Path) {
    let flags = if archive.extension().is_some_and(|e| e == "gz") {
        "-czf"
    } else {
        "-cf"
    };
    let status = std::process::Command::new("tar")
        .arg(flags)
        .arg(archive)
        .arg("-C")
        .arg(tree)
        .arg(".")
        .status()
        .unwrap();
    assert!(status.success(), "tar {}", archive.display());
}

fn playbook(lab: &Lab) -> std::path::PathBuf {
    lab.write(
        "ship.yml",
        "hosts: web\nsteps:\n  - name: Site\n    upload: { src: site, dest: \"{{ app_dir }}/site\" }\n  - name: App\n    archive: { src: app.tar.gz, dest: \"{{ app_dir }}/app\", mode: \"0750\" }\n",
    )
}

/// Per step name, the transfers reported: (host, bytes, unchanged).
fn transfers(run: &Run, step: &str) -> Vec<(String, u64, bool)> {
    let mut found: Vec<(String, u64, bool)> = run
        .json_events()
        .into_iter()
        .filter(|e| e["event"] == "step_finished" && e["name"] == step)
        .map(|e| {
            (
                e["host"].as_str().unwrap().to_string(),
                e["transfer"]["bytes"].as_u64().unwrap(),
                e["transfer"]["unchanged"].as_bool().unwrap(),
            )
        })
        .collect();
    found.sort();
    found
}

fn assert_landed(app: &Path) {
    let site = app.join("site");
    assert_eq!(
        fs::read_to_string(site.join("index.html")).unwrap(),
        "<h1>v1</h1>\n"
    );
    assert_eq!(
        fs::read_to_string(site.join("static/css/app.css")).unwrap(),
        "body {}\n"
    );
    assert_eq!(mode_of(&site.join("bin/run")), 0o755);
    assert_eq!(mode_of(&site.join("index.html")), 0o640);
    assert!(fs::symlink_metadata(site.join("start"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(
        fs::read_link(site.join("start")).unwrap(),
        Path::new("bin/run")
    );

    let unpacked = app.join("app");
    assert_eq!(
        fs::read_to_string(unpacked.join("app.py")).unwrap(),
        "print('app v1')\n"
    );
    assert_eq!(mode_of(&unpacked.join("bin/serve")), 0o755);
    assert_eq!(mode_of(&unpacked), 0o750);
    // Nothing was left beside the destinations.
    let beside: Vec<String> = fs::read_dir(app)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains(".herd-upload-"))
        .collect();
    assert_eq!(beside, Vec::<String>::new());
}

#[test]
fn a_directory_and_a_tarball_land_whole_and_a_rerun_sends_nothing() {
    let lab = Lab::up(2);
    artifacts(&lab);
    let playbook = playbook(&lab);

    let first = lab.herd(["run", "--output", "json"]).arg(&playbook).run();
    first.assert_code(0);
    for host in ["host01", "host02"] {
        assert_landed(lab.app_dir(host));
    }
    let site = transfers(&first, "Site");
    assert_eq!(site.len(), 2, "{first}");
    assert!(
        site.iter()
            .all(|(_, bytes, unchanged)| *bytes > 0 && !unchanged),
        "{site:?}"
    );
    let archive_size = fs::metadata(lab.dir().join("app.tar.gz")).unwrap().len();
    assert_eq!(
        transfers(&first, "App"),
        vec![
            ("host01".to_string(), archive_size, false),
            ("host02".to_string(), archive_size, false)
        ],
        "{first}"
    );

    let second = lab.herd(["run", "--output", "json"]).arg(&playbook).run();
    second.assert_code(0);
    for step in ["Site", "App"] {
        assert_eq!(
            transfers(&second, step),
            vec![
                ("host01".to_string(), 0, true),
                ("host02".to_string(), 0, true)
            ],
            "{second}"
        );
    }
    for host in ["host01", "host02"] {
        assert_landed(lab.app_dir(host));
    }

    // The plain report says so.
    let third = lab.herd(["run"]).arg(&playbook).run();
    third.assert_code(0);
    assert!(
        third
            .stderr()
            .contains("host01: [1/2] Site: ok: unchanged (sha256 "),
        "{third}"
    );
}

#[test]
fn a_tree_lands_where_dest_holds_a_backslash_and_a_dash() {
    let lab = Lab::up(1);
    artifacts(&lab);
    let playbook = lab.write(
        "odd.yml",
        "hosts: web\nsteps:\n  - name: Site\n    upload: { src: site, dest: \"{{ app_dir }}/-s\\\\ite\\\\n\" }\n",
    );

    let run = lab.herd(["run"]).arg(&playbook).run();

    run.assert_code(0);
    let landed = lab.app_dir("host01").join("-s\\ite\\n");
    assert_eq!(
        fs::read_to_string(landed.join("index.html")).unwrap(),
        "<h1>v1</h1>\n",
        "{run}"
    );
    assert!(landed.join("static/css/app.css").exists(), "{run}");
}

#[test]
fn a_file_changed_on_the_host_brings_the_tree_back() {
    let lab = Lab::up(1);
    artifacts(&lab);
    let playbook = playbook(&lab);
    lab.herd(["run"]).arg(&playbook).run().assert_code(0);
    let app = lab.app_dir("host01").to_path_buf();
    fs::write(app.join("site/static/css/app.css"), "tampered\n").unwrap();
    // A file added to the unpacked archive counts as a change too.
    fs::write(app.join("app/stray.txt"), "stray\n").unwrap();

    let run = lab.herd(["run", "--output", "json"]).arg(&playbook).run();

    run.assert_code(0);
    let site = transfers(&run, "Site");
    assert!(site[0].1 > 0 && !site[0].2, "{site:?}\n{run}");
    let archive = transfers(&run, "App");
    assert!(archive[0].1 > 0 && !archive[0].2, "{archive:?}\n{run}");
    assert_landed(&app);
    assert!(
        !app.join("app/stray.txt").exists(),
        "the tree is replaced whole"
    );
}

#[test]
fn a_single_file_is_skipped_when_the_host_has_it_with_its_mode() {
    let lab = Lab::up(1);
    lab.write("settings.ini", "[app]\nworkers = 4\n");
    let app = lab.app_dir("host01").to_path_buf();
    let playbook = lab.write(
        "file.yml",
        "hosts: web\nsteps:\n  - name: Settings\n    upload: { src: settings.ini, dest: \"{{ app_dir }}/settings.ini\", mode: \"0600\" }\n",
    );
    let first = lab.herd(["run", "--output", "json"]).arg(&playbook).run();
    first.assert_code(0);
    assert_eq!(
        transfers(&first, "Settings"),
        vec![("host01".to_string(), 18, false)]
    );

    let again = lab.herd(["run", "--output", "json"]).arg(&playbook).run();
    assert_eq!(
        transfers(&again, "Settings"),
        vec![("host01".to_string(), 0, true)],
        "{again}"
    );

    // Changed on the host, same size: shipped again, though the run before
    // recorded the file as holding the artifact.
    fs::write(app.join("settings.ini"), "[app]\nworkers = 5\n").unwrap();
    let after_edit = lab.herd(["run", "--output", "json"]).arg(&playbook).run();
    assert_eq!(
        transfers(&after_edit, "Settings"),
        vec![("host01".to_string(), 18, false)],
        "{after_edit}"
    );
    assert_eq!(
        fs::read_to_string(app.join("settings.ini")).unwrap(),
        "[app]\nworkers = 4\n"
    );

    set_mode(&app.join("settings.ini"), 0o644);
    let after_chmod = lab.herd(["run", "--output", "json"]).arg(&playbook).run();
    assert_eq!(
        transfers(&after_chmod, "Settings"),
        vec![("host01".to_string(), 18, false)],
        "{after_chmod}"
    );
    assert_eq!(mode_of(&app.join("settings.ini")), 0o600);
}

#[test]
fn under_become_a_directory_lands_as_the_user_become() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: only a lab started as root has an account to become");
        return;
    }
    let lab = Lab::up(1);
    artifacts(&lab);
    let dest = Path::new("/home/herd-lab-app").join(common::unique("site"));
    let playbook = lab.write(
        "become.yml",
        &format!(
            "hosts: web\nsteps:\n  - name: Site\n    upload: {{ src: site, dest: {} }}\n    become: true\n    become_user: herd-lab-app\n",
            dest.display()
        ),
    );

    let login_home = format!("/home/{}", lab.user());
    let staging = || -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(&login_home)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.starts_with(".herd-upload-"))
            .collect();
        names.sort();
        names
    };
    let staged_before = staging();

    let run = lab.herd(["run", "--output", "json"]).arg(&playbook).run();
    let again = lab.herd(["run", "--output", "json"]).arg(&playbook).run();
    let owner = fs::metadata(dest.join("bin/run")).map(|m| std::os::unix::fs::MetadataExt::uid(&m));
    let exec_mode = fs::metadata(dest.join("bin/run")).map(|m| m.permissions().mode() & 0o7777);
    let _ = fs::remove_dir_all(&dest);

    run.assert_code(0);
    assert_eq!(owner.unwrap(), common::app_uid(), "{run}");
    assert_eq!(exec_mode.unwrap(), 0o755);
    assert_eq!(
        transfers(&again, "Site"),
        vec![("host01".to_string(), 0, true)],
        "{again}"
    );
    // Other tests share the login user's home: their staging files come
    // and go, one of these runs' would stay.
    let new = || -> Vec<String> {
        staging()
            .into_iter()
            .filter(|name| !staged_before.contains(name))
            .collect()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !new().is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(
        new(),
        Vec::<String>::new(),
        "a staging file was left\n{run}"
    );
}

/// `herd run playbook.yml` in a directory whose one host is `fake`.
fn refused(playbook: &str, files: &[(&str, &str)]) -> (Run, FakeHost) {
    let fake = FakeHost::new();
    let dir = tempfile::tempdir().unwrap();
    write_file(
        dir.path(),
        "inventory.yml",
        &format!(
            "all:\n  children:\n    web:\n      hosts:\n        web01: {{ ansible_host: 127.0.0.1, ansible_port: {} }}\n",
            fake.port()
        ),
    );
    for (name, text) in files {
        write_file(dir.path(), name, text);
    }
    write_file(dir.path(), "playbook.yml", playbook);
    let run = Herd::new()
        .current_dir(dir.path())
        .args([
            "run",
            "playbook.yml",
            "-i",
            "inventory.yml",
            "--connect-timeout",
            "1s",
        ])
        .run();
    (run, fake)
}

fn assert_refused(run: &Run, fake: &FakeHost, message: &str) {
    run.assert_code(2);
    assert!(
        run.stderr().contains(message),
        "expected {message:?}\n{run}"
    );
    assert_eq!(fake.connections(), 0, "herd contacted the host\n{run}");
}

#[test]
fn bad_artifacts_are_refused_at_their_place_before_any_host_is_contacted() {
    let (run, fake) = refused(
        "hosts: web\nsteps:\n  - archive: { src: build/app.tar.gz, dest: /srv/app }\n",
        &[],
    );
    assert_refused(&run, &fake, "cannot read archive ");
    assert!(
        run.stderr()
            .contains("build/app.tar.gz: No such file or directory"),
        "{run}"
    );
    assert!(run.stderr().contains("  --> playbook.yml:3:21\n"), "{run}");

    let (run, fake) = refused(
        "hosts: web\nsteps:\n  - archive: { src: build, dest: /srv/app }\n",
        &[("build/app.py", "x")],
    );
    assert_refused(
        &run,
        &fake,
        "is not a regular file: `archive` takes a .tar or .tar.gz file",
    );
    assert!(run.stderr().contains("  --> playbook.yml:3:21\n"), "{run}");

    let (run, fake) = refused(
        "hosts: web\nsteps:\n  - archive: { src: notes.txt, dest: /srv/app }\n",
        &[("notes.txt", "just text\n")],
    );
    assert_refused(
        &run,
        &fake,
        "is neither a gzip-compressed nor a plain tar archive",
    );

    let (run, fake) = refused(
        "hosts: web\nsteps:\n  - run: echo hi\n    archive: { src: a.tar, dest: /srv/app }\n",
        &[],
    );
    assert_refused(
        &run,
        &fake,
        "error: a step in `steps` has both `run` and `archive`: split it in two\n  --> playbook.yml:3:5\n",
    );

    let (run, fake) = refused(
        "hosts: web\nsteps:\n  - upload: { src: missing-dir, dest: /srv/app }\n",
        &[],
    );
    assert_refused(&run, &fake, "cannot read upload source ");
    assert!(run.stderr().contains("  --> playbook.yml:3:20\n"), "{run}");
}

/// Names beside `dest` that herd's temporaries use.
fn debris(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains(".herd-upload-"))
        .collect()
}

#[test]
fn a_marker_symlink_in_a_tarball_does_not_overwrite_what_it_points_to() {
    let lab = Lab::up(1);
    let app = lab.app_dir("host01").to_path_buf();
    let victim = app.join("victim.conf");
    fs::write(&victim, "precious\n").unwrap();
    common::chown_to(lab.user(), &victim);
    let tree = lab.dir().join("evil");
    write_file(&tree, "app.py", "print('app')\n");
    std::os::unix::fs::symlink(&victim, tree.join(".herd-sha256")).unwrap();
    tar(&tree, &lab.dir().join("evil.tar"));
    let playbook = lab.write(
        "evil.yml",
        "hosts: web\nsteps:\n  - name: App\n    archive: { src: evil.tar, dest: \"{{ app_dir }}/app\" }\n",
    );

    let run = lab.herd(["run"]).arg(&playbook).run();

    run.assert_code(0);
    assert_eq!(fs::read_to_string(&victim).unwrap(), "precious\n", "{run}");
    assert!(fs::symlink_metadata(app.join("app/.herd-sha256"))
        .unwrap()
        .file_type()
        .is_file());
    assert_eq!(
        fs::read_to_string(app.join("app/app.py")).unwrap(),
        "print('app')\n"
    );
}

#[test]
fn a_tree_with_a_read_only_directory_is_replaced_and_nothing_is_left_beside() {
    let lab = Lab::up(1);
    let src = lab.dir().join("locked-tree");
    write_file(&src, "locked/data.txt", "v1\n");
    set_mode(&src.join("locked"), 0o555);
    let playbook = lab.write(
        "locked.yml",
        "hosts: web\nsteps:\n  - name: Tree\n    upload: { src: locked-tree, dest: \"{{ app_dir }}/tree\" }\n",
    );
    let first = lab.herd(["run"]).arg(&playbook).run();
    set_mode(&src.join("locked"), 0o755);
    fs::write(src.join("locked/data.txt"), "v2\n").unwrap();
    set_mode(&src.join("locked"), 0o555);

    let second = lab.herd(["run", "--output", "json"]).arg(&playbook).run();

    let app = lab.app_dir("host01").to_path_buf();
    let data = fs::read_to_string(app.join("tree/locked/data.txt"));
    let left = debris(&app);
    let _ = std::process::Command::new("chmod")
        .args(["-R", "u+w"])
        .arg(&app)
        .arg(&src)
        .status();
    first.assert_code(0);
    second.assert_code(0);
    assert_eq!(data.unwrap(), "v2\n", "{second}");
    let tree = transfers(&second, "Tree");
    assert!(tree[0].1 > 0 && !tree[0].2, "{tree:?}");
    assert_eq!(left, Vec::<String>::new(), "{second}");
}

#[test]
fn switching_the_user_become_ships_again_and_the_new_user_owns_it() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: only a lab started as root has an account to become");
        return;
    }
    let lab = Lab::up(1);
    artifacts(&lab);
    lab.write("settings.ini", "[app]\nworkers = 4\n");
    // A directory both the login user and the user become may write into.
    let shared = std::env::temp_dir().join(common::unique("herd-shared"));
    fs::create_dir(&shared).unwrap();
    set_mode(&shared, 0o777);
    let steps = "steps:\n  - name: Settings\n    upload: { src: settings.ini, dest: \"{{ shared }}/settings.ini\" }\n  - name: Site\n    upload: { src: site, dest: \"{{ shared }}/site\" }\n";
    let become_ = "    become: true\n    become_user: herd-lab-app\n";
    let plain = lab.write(
        "plain.yml",
        &format!("hosts: web\nvars:\n  shared: {}\n{steps}", shared.display()),
    );
    let as_app = lab.write(
        "as-app.yml",
        &format!(
            "hosts: web\nvars:\n  shared: {}\n{}",
            shared.display(),
            steps.replace("\n  - name: Site", &format!("\n{become_}  - name: Site")) + become_
        ),
    );

    let first = lab.herd(["run"]).arg(&plain).run();
    let second = lab.herd(["run", "--output", "json"]).arg(&as_app).run();
    let uid = |p: &Path| fs::metadata(p).map(|m| std::os::unix::fs::MetadataExt::uid(&m));
    let owners = (
        uid(&shared.join("site/bin/run")),
        uid(&shared.join("settings.ini")),
    );
    let _ = fs::remove_dir_all(&shared);

    first.assert_code(0);
    second.assert_code(0);
    for step in ["Site", "Settings"] {
        let shipped = transfers(&second, step);
        assert!(
            shipped[0].1 > 0 && !shipped[0].2,
            "{step}: {shipped:?}\n{second}"
        );
    }
    assert_eq!(owners.0.unwrap(), common::app_uid(), "{second}");
    assert_eq!(owners.1.unwrap(), common::app_uid(), "{second}");
    // The login user's previous tree is not the new user's to remove: the
    // step still succeeded, with a warning.
    let site = second
        .json_events()
        .into_iter()
        .find(|e| e["event"] == "step_finished" && e["name"] == "Site")
        .unwrap();
    assert!(
        site["stderr"]
            .as_str()
            .unwrap()
            .starts_with("warning: the previous tree could not be removed: "),
        "{second}"
    );
}
