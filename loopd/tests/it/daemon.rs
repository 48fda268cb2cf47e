//! Starting, refusing and stopping the daemon.

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::start_daemon;

#[test]
fn a_second_daemon_on_the_same_data_dir_exits_naming_the_first() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let first = start_daemon(&data, &[], &[]);
    let second = Command::new(env!("CARGO_BIN_EXE_loopd"))
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .stdin(Stdio::null())
        .output()
        .expect("run loopd");
    assert!(!second.status.success());
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(stderr.contains(&format!("pid {}", first.pid())), "{stderr}");
    assert!(stderr.contains(&first.base), "names the address: {stderr}");
}

#[test]
fn a_taken_port_is_an_error_at_start() {
    let dir = tempfile::tempdir().expect("temp dir");
    let first = start_daemon(&dir.path().join("one"), &[], &[]);
    let address = first.base.trim_start_matches("http://").to_owned();
    let second = Command::new(env!("CARGO_BIN_EXE_loopd"))
        .args(["--listen", &address, "--data-dir"])
        .arg(dir.path().join("two"))
        .stdin(Stdio::null())
        .output()
        .expect("run loopd");
    assert!(!second.status.success());
    assert!(String::from_utf8_lossy(&second.stderr).contains(&address));
}

#[test]
fn a_non_loopback_address_needs_allow_remote() {
    let dir = tempfile::tempdir().expect("temp dir");
    let output = Command::new(env!("CARGO_BIN_EXE_loopd"))
        .args(["--listen", "0.0.0.0:0", "--data-dir"])
        .arg(dir.path())
        .stdin(Stdio::null())
        .output()
        .expect("run loopd");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--allow-remote"));
}

#[test]
fn sigterm_stops_the_daemon_cleanly_and_the_data_dir_is_private() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let mut daemon = start_daemon(&data, &[], &[]);
    let status = daemon
        .terminate(Duration::from_secs(5))
        .expect("exits within 5 s");
    assert!(status.success(), "{status:?}");
    let mode = |path: &std::path::Path| {
        std::fs::metadata(path)
            .expect("metadata")
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("loopd.db")), 0o600);
}
