//! Uploads never expose what they carry on the way: the file being written
//! has an unpredictable name, is readable by its owner alone from its
//! creation, is never a symlink someone planted, and is gone after any
//! failure, a timeout included.

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{wait_until, Lab};

/// Held by every test that uploads under `become`: they all stage their
/// bytes in the one login user's home, where each looks for staging files
/// (and checks that none is left) without knowing which run made them.
static STAGING: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn staging_to_myself() -> std::sync::MutexGuard<'static, ()> {
    STAGING
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Files in `dir` whose name starts with `prefix`.
fn entries_starting_with(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
        .map(|e| e.path())
        .collect();
    found.sort();
    found
}

fn upload_playbook(dest: &Path, mode: &str, timeout: &str) -> String {
    format!(
        "hosts: web\nsteps:\n  - name: Ship\n    upload: {{ src: payload.bin, dest: {}, mode: \"{mode}\" }}\n    timeout: {timeout}\n",
        dest.display()
    )
}

#[test]
fn an_upload_being_written_is_private_and_one_that_times_out_leaves_nothing() {
    let lab = Lab::up(1);
    // Large enough that the transfer is caught under way.
    fs::write(lab.dir().join("payload.bin"), vec![b'x'; 96 << 20]).unwrap();
    let app = lab.app_dir("host01").to_path_buf();
    let dest = app.join("big.bin");
    let playbook = lab.write("big.yml", &upload_playbook(&dest, "0644", "3s"));

    let herd = lab.herd(["run"]).arg(&playbook).spawn();
    let mut partial = Vec::new();
    let seen = wait_until(Duration::from_secs(30), || {
        partial = entries_starting_with(&app, "big.bin.herd-upload-");
        !partial.is_empty()
    });
    // Freeze herd mid-transfer past its timeout: the deadline passes while
    // the temporary file holds part of the data.
    herd.signal(libc::SIGSTOP);
    assert!(seen, "no temporary file appeared beside {}", dest.display());
    assert_eq!(partial.len(), 1, "{partial:?}");
    let mode = fs::metadata(&partial[0]).unwrap().mode() & 0o7777;
    assert_eq!(mode, 0o600, "{} is {mode:o}", partial[0].display());
    let name = partial[0]
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let random = &name["big.bin.herd-upload-".len()..];
    assert!(
        random.len() == 16 && random.bytes().all(|b| b.is_ascii_hexdigit()),
        "{name}"
    );
    std::thread::sleep(Duration::from_secs(4));
    herd.signal(libc::SIGCONT);
    let run = herd.wait();

    run.assert_code(1);
    assert!(
        run.stderr().contains(&format!(
            "host01: [1/1] Ship: FAILED: uploading {} timed out after 3s",
            dest.display()
        )),
        "{run}"
    );
    assert_eq!(
        entries_starting_with(&app, "big.bin"),
        Vec::<PathBuf>::new(),
        "{run}"
    );
}

#[test]
fn an_upload_that_cannot_be_moved_into_place_leaves_no_temporary_file() {
    let lab = Lab::up(1);
    lab.write("payload.bin", "secret = 42\n");
    let app = lab.app_dir("host01").to_path_buf();
    // A directory of root's: the upload cannot be moved into it.
    let dest = app.join("taken");
    fs::create_dir(&dest).unwrap();
    fs::set_permissions(&dest, fs::Permissions::from_mode(0o755)).unwrap();
    let playbook = lab.write("ship.yml", &upload_playbook(&dest, "0600", "30s"));

    let run = lab.herd(["run"]).arg(&playbook).run();

    run.assert_code(1);
    assert!(
        run.stderr()
            .contains("host01: [1/1] Ship: FAILED: upload to"),
        "{run}"
    );
    assert_eq!(
        entries_starting_with(&app, "taken.herd-upload"),
        Vec::<PathBuf>::new(),
        "{run}"
    );
    assert_eq!(fs::read_dir(&dest).unwrap().count(), 0, "{run}");
}

#[test]
fn a_symlink_planted_at_the_old_temporary_name_is_not_written_through() {
    let lab = Lab::up(1);
    lab.write("payload.bin", "secret = 42\n");
    let app = lab.app_dir("host01").to_path_buf();
    let dest = app.join("settings.ini");
    let victim = app.join("victim.txt");
    fs::write(&victim, "untouched\n").unwrap();
    common::chown_to(lab.user(), &victim);
    std::os::unix::fs::symlink(&victim, app.join("settings.ini.herd-upload")).unwrap();
    let playbook = lab.write("ship.yml", &upload_playbook(&dest, "0600", "30s"));

    let run = lab.herd(["run"]).arg(&playbook).run();

    run.assert_code(0);
    assert_eq!(fs::read_to_string(&victim).unwrap(), "untouched\n");
    assert_eq!(fs::read_to_string(&dest).unwrap(), "secret = 42\n");
    assert_eq!(fs::metadata(&dest).unwrap().mode() & 0o7777, 0o600);
    // Only the planted link is left beside the destination, as it was.
    assert_eq!(
        entries_starting_with(&app, "settings.ini."),
        vec![app.join("settings.ini.herd-upload")]
    );
    assert_eq!(
        fs::read_link(app.join("settings.ini.herd-upload")).unwrap(),
        victim
    );
}

/// Under `become`, the user become writes the copy: a link planted where it
/// used to write (`DEST.herd-upload`) would have had that user write through it.
#[test]
fn under_become_a_planted_symlink_is_not_written_through_and_nothing_is_left() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: only a lab started as root has an account to become");
        return;
    }
    let _staging = staging_to_myself();
    let lab = Lab::up(1);
    lab.write("payload.bin", "secret = 42\n");
    let home = PathBuf::from("/home/herd-lab-app");
    let dest = home.join(common::unique("settings"));
    let victim = home.join(common::unique("victim"));
    fs::write(&victim, "untouched\n").unwrap();
    common::chown_to("herd-lab-app", &victim);
    let planted = PathBuf::from(format!("{}.herd-upload", dest.display()));
    std::os::unix::fs::symlink(&victim, &planted).unwrap();
    let playbook = lab.write(
        "ship.yml",
        &format!(
            "hosts: web\nsteps:\n  - name: Ship\n    upload: {{ src: payload.bin, dest: {}, mode: \"0640\" }}\n    become: true\n    become_user: herd-lab-app\n",
            dest.display()
        ),
    );

    let run = lab.herd(["run"]).arg(&playbook).run();
    let victim_text = fs::read_to_string(&victim);
    let shipped = fs::read_to_string(&dest);
    let shipped_mode = fs::metadata(&dest).map(|m| m.mode() & 0o7777);
    let beside = entries_starting_with(
        &home,
        &format!("{}.", dest.file_name().unwrap().to_string_lossy()),
    );
    for path in [&victim, &dest, &planted] {
        let _ = fs::remove_file(path);
    }

    run.assert_code(0);
    assert_eq!(victim_text.unwrap(), "untouched\n");
    assert_eq!(shipped.unwrap(), "secret = 42\n");
    assert_eq!(shipped_mode.unwrap(), 0o640);
    assert_eq!(beside, vec![planted.clone()], "{run}");
    let login_home = PathBuf::from(format!("/home/{}", lab.user()));
    assert_eq!(
        entries_starting_with(&login_home, ".herd-upload"),
        Vec::<PathBuf>::new()
    );
}

#[test]
fn under_become_a_timed_out_upload_leaves_no_staging_file() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: only a lab started as root has an account to become");
        return;
    }
    let _staging = staging_to_myself();
    let lab = Lab::up(1);
    fs::write(lab.dir().join("payload.bin"), vec![b'x'; 96 << 20]).unwrap();
    let home = PathBuf::from("/home/herd-lab-app");
    let dest = home.join(common::unique("big"));
    let login_home = PathBuf::from(format!("/home/{}", lab.user()));
    let playbook = lab.write(
        "ship.yml",
        &format!(
            "hosts: web\nsteps:\n  - name: Ship\n    upload: {{ src: payload.bin, dest: {}, mode: \"0644\" }}\n    become: true\n    become_user: herd-lab-app\n    timeout: 3s\n",
            dest.display()
        ),
    );

    let herd = lab.herd(["run"]).arg(&playbook).spawn();
    let mut staging = Vec::new();
    let seen = wait_until(Duration::from_secs(30), || {
        staging = entries_starting_with(&login_home, ".herd-upload-");
        !staging.is_empty()
    });
    herd.signal(libc::SIGSTOP);
    assert!(seen, "no staging file appeared in {}", login_home.display());
    let mode = fs::metadata(&staging[0]).unwrap().mode() & 0o7777;
    assert_eq!(mode, 0o600, "{} is {mode:o}", staging[0].display());
    std::thread::sleep(Duration::from_secs(4));
    herd.signal(libc::SIGCONT);
    let run = herd.wait();

    run.assert_code(1);
    assert!(run.stderr().contains("timed out after 3s"), "{run}");
    assert_eq!(
        entries_starting_with(&login_home, ".herd-upload"),
        Vec::<PathBuf>::new(),
        "{run}"
    );
    let name = dest.file_name().unwrap().to_string_lossy().into_owned();
    assert_eq!(entries_starting_with(&home, &name), Vec::<PathBuf>::new());
}

/// Processes whose command line holds every one of `needles`.
fn processes_running(needles: &[&str]) -> Vec<u32> {
    fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|line| {
                let line = String::from_utf8_lossy(&line);
                needles.iter().all(|n| line.contains(n))
            })
        })
        .collect()
}

fn is_sudo(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "sudo")
}

fn send(pid: u32, signal: libc::c_int) {
    // SAFETY: a plain kill(2); a pid that is already gone only fails it.
    unsafe { libc::kill(pid as libc::pid_t, signal) };
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// The move into place (the `sudo` part) gets what is left of the step's
/// timeout, not a timeout of its own: the test freezes herd during the
/// staging upload for most of the timeout, then stops the `sudo` that moves
/// the file, and herd gives up when the one timeout is spent.
#[test]
fn under_become_the_staging_upload_and_the_move_share_one_timeout() {
    if !is_root() {
        eprintln!("skipped: only a lab started as root has an account to become");
        return;
    }
    let _staging = staging_to_myself();
    let lab = Lab::up(1);
    fs::write(lab.dir().join("payload.bin"), vec![b'x'; 32 << 20]).unwrap();
    let home = PathBuf::from("/home/herd-lab-app");
    let dest = home.join(common::unique("shared"));
    let login_home = PathBuf::from(format!("/home/{}", lab.user()));
    let playbook = lab.write(
        "ship.yml",
        &format!(
            "hosts: web\nsteps:\n  - name: Ship\n    upload: {{ src: payload.bin, dest: {}, mode: \"0644\" }}\n    become: true\n    become_user: herd-lab-app\n    timeout: 5s\n",
            dest.display()
        ),
    );
    let dest_text = dest.display().to_string();

    let mut herd = lab.herd(["run"]).arg(&playbook).spawn();
    let seen = wait_until(Duration::from_secs(30), || {
        !entries_starting_with(&login_home, ".herd-upload-").is_empty()
    });
    let started = std::time::Instant::now();
    // Three of the five seconds go by during the staging upload.
    herd.signal(libc::SIGSTOP);
    std::thread::sleep(Duration::from_secs(3));
    herd.signal(libc::SIGCONT);
    // Then the move into place hangs: every process of it is stopped (sudo
    // and the shell it starts, caught again as it forks).
    let mut stopped: Vec<u32> = Vec::new();
    let mut first_seen: Option<std::time::Instant> = None;
    while herd.is_running() && first_seen.is_none_or(|t| t.elapsed() < Duration::from_millis(500)) {
        for pid in processes_running(&["set -C", &dest_text]) {
            if !stopped.contains(&pid) {
                send(pid, libc::SIGSTOP);
                stopped.push(pid);
                first_seen.get_or_insert_with(std::time::Instant::now);
            }
        }
    }
    let run = herd.wait();
    let elapsed = started.elapsed();
    // Its children first: a shell left stopped without its sudo would be
    // woken up by the kernel and could finish the move.
    stopped.sort_by_key(|pid| is_sudo(*pid));
    for pid in &stopped {
        send(*pid, libc::SIGKILL);
    }
    let gone = wait_until(Duration::from_secs(10), || {
        stopped.iter().all(|pid| !common::alive(*pid))
    });
    let name = dest.file_name().unwrap().to_string_lossy().into_owned();
    let left = entries_starting_with(&home, &name);
    for path in &left {
        let _ = fs::remove_file(path);
    }

    assert!(seen, "no staging file appeared in {}", login_home.display());
    assert!(
        !stopped.is_empty(),
        "the move into place was not caught\n{run}"
    );
    assert!(gone, "stopped processes {stopped:?} did not go away");
    run.assert_code(1);
    assert!(
        run.stderr().contains(&format!(
            "host01: [1/1] Ship: FAILED: uploading {} timed out after 5s",
            dest.display()
        )),
        "{run}"
    );
    // Two timeouts would be past 8 seconds; one, with the clean-up, well
    // under 7.5.
    assert!(
        elapsed < Duration::from_millis(7500),
        "the upload took {elapsed:?} with a 5s timeout\n{run}"
    );
    assert_eq!(left, Vec::<PathBuf>::new(), "{run}");
    assert_eq!(
        entries_starting_with(&login_home, ".herd-upload"),
        Vec::<PathBuf>::new(),
        "{run}"
    );
}

fn ship_playbook(steps: &[(&Path, bool)]) -> String {
    let mut text = String::from("hosts: web\nsteps:\n");
    for (i, (dest, become_)) in steps.iter().enumerate() {
        text.push_str(&format!(
            "  - name: Ship {}\n    upload: {{ src: payload.bin, dest: {}, mode: \"0640\" }}\n",
            i + 1,
            dest.display()
        ));
        if *become_ {
            text.push_str("    become: true\n    become_user: herd-lab-app\n");
        }
    }
    text
}

/// An upload whose destination is a directory fails, naming it, instead of
/// landing inside it; the directory is left as it was.
#[test]
fn an_upload_to_a_directory_is_refused_and_the_directory_left_alone() {
    let _staging = staging_to_myself();
    let lab = Lab::up(1);
    lab.write("payload.bin", "secret = 42\n");
    let app = lab.app_dir("host01").to_path_buf();
    let dest = app.join("conf.d");
    fs::create_dir(&dest).unwrap();
    fs::write(dest.join("keep.ini"), "kept\n").unwrap();
    common::chown_to(lab.user(), &dest);
    common::chown_to(lab.user(), &dest.join("keep.ini"));
    let before = common::dir_state(&dest);
    let playbook = lab.write("ship.yml", &ship_playbook(&[(&dest, false)]));

    let run = lab.herd(["run"]).arg(&playbook).run();

    run.assert_code(1);
    assert!(
        run.stderr().contains(&format!(
            "host01: [1/1] Ship 1: FAILED: upload to {0} failed: {0} is a directory",
            dest.display()
        )),
        "{run}"
    );
    assert_eq!(common::dir_state(&dest), before, "{run}");
    assert_eq!(
        entries_starting_with(&app, "conf.d."),
        Vec::<PathBuf>::new(),
        "{run}"
    );

    if !is_root() {
        eprintln!("skipped the become part: only a lab started as root has an account to become");
        return;
    }
    let home = PathBuf::from("/home/herd-lab-app");
    let dest = home.join(common::unique("conf.d"));
    fs::create_dir(&dest).unwrap();
    fs::write(dest.join("keep.ini"), "kept\n").unwrap();
    common::chown_to("herd-lab-app", &dest);
    common::chown_to("herd-lab-app", &dest.join("keep.ini"));
    let before = common::dir_state(&dest);
    let playbook = lab.write("ship-as.yml", &ship_playbook(&[(&dest, true)]));

    let run = lab.herd(["run"]).arg(&playbook).run();
    let after = common::dir_state(&dest);
    let name = dest.file_name().unwrap().to_string_lossy().into_owned();
    let beside = entries_starting_with(&home, &format!("{name}."));
    let _ = fs::remove_dir_all(&dest);
    for path in &beside {
        let _ = fs::remove_file(path);
    }

    run.assert_code(1);
    assert!(
        run.stderr().contains(&format!(
            "host01: [1/1] Ship 1: FAILED: upload to {0} as herd-lab-app failed: {0} is a directory",
            dest.display()
        )),
        "{run}"
    );
    assert_eq!(after, before, "{run}");
    assert_eq!(beside, Vec::<PathBuf>::new(), "{run}");
    let login_home = PathBuf::from(format!("/home/{}", lab.user()));
    assert_eq!(
        entries_starting_with(&login_home, ".herd-upload"),
        Vec::<PathBuf>::new(),
        "{run}"
    );
}

/// Like an atomic rename, an upload replaces a symlink at its destination
/// with the file itself: the link is never followed, neither into the
/// directory nor onto the file it points to.
#[test]
fn an_upload_replaces_a_symlink_at_its_destination_and_never_writes_through_it() {
    let _staging = staging_to_myself();
    let lab = Lab::up(1);
    lab.write("payload.bin", "secret = 42\n");
    let app = lab.app_dir("host01").to_path_buf();
    let real_dir = app.join("real.d");
    fs::create_dir(&real_dir).unwrap();
    common::chown_to(lab.user(), &real_dir);
    let to_dir = app.join("to-dir.ini");
    std::os::unix::fs::symlink(&real_dir, &to_dir).unwrap();
    // A file outside the app directory, the login user's to write.
    let outside = lab.dir().join(common::unique("outside"));
    fs::write(&outside, "untouched\n").unwrap();
    common::chown_to(lab.user(), &outside);
    let to_file = app.join("to-file.ini");
    std::os::unix::fs::symlink(&outside, &to_file).unwrap();

    let mut steps: Vec<(&Path, bool)> = vec![(&to_dir, false), (&to_file, false)];
    let home = PathBuf::from("/home/herd-lab-app");
    let become_real_dir = home.join(common::unique("real.d"));
    let become_to_dir = home.join(common::unique("to-dir.ini"));
    if is_root() {
        fs::create_dir(&become_real_dir).unwrap();
        common::chown_to("herd-lab-app", &become_real_dir);
        std::os::unix::fs::symlink(&become_real_dir, &become_to_dir).unwrap();
        steps.push((&become_to_dir, true));
    } else {
        eprintln!("skipped the become part: only a lab started as root has an account to become");
    }
    let playbook = lab.write("ship.yml", &ship_playbook(&steps));

    let run = lab.herd(["run"]).arg(&playbook).run();
    let become_state = is_root().then(|| {
        let state = (
            fs::symlink_metadata(&become_to_dir).map(|m| m.file_type().is_file()),
            fs::read_to_string(&become_to_dir),
            fs::read_dir(&become_real_dir).map(|d| d.count()),
        );
        let _ = fs::remove_file(&become_to_dir);
        let _ = fs::remove_dir_all(&become_real_dir);
        state
    });

    run.assert_code(0);
    for link in [&to_dir, &to_file] {
        let meta = fs::symlink_metadata(link).unwrap();
        assert!(
            meta.file_type().is_file(),
            "{} is not a file\n{run}",
            link.display()
        );
        assert_eq!(meta.mode() & 0o7777, 0o640);
        assert_eq!(fs::read_to_string(link).unwrap(), "secret = 42\n");
    }
    assert_eq!(fs::read_dir(&real_dir).unwrap().count(), 0, "{run}");
    assert_eq!(fs::read_to_string(&outside).unwrap(), "untouched\n");
    if let Some((is_file, text, inside)) = become_state {
        assert!(
            is_file.unwrap(),
            "{} is not a file\n{run}",
            become_to_dir.display()
        );
        assert_eq!(text.unwrap(), "secret = 42\n");
        assert_eq!(inside.unwrap(), 0, "{run}");
    }
}
