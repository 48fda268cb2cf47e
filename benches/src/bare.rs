//! The processes of a run, run bare: the baseline the orchestration benchmarks subtract.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};

/// One child as the runtime runs it: `sh -c`, own process group, stdin written and closed,
/// stdout and stderr read to the end. Returns stdout.
pub fn spawn_like_runtime(command: &str, cwd: &Path, env: &[(&str, &str)], stdin: &[u8]) -> String {
    use std::os::unix::process::CommandExt;
    let mut child = Command::new("sh")
        .args(["-c", command])
        .current_dir(cwd)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("spawn");
    let mut input = child.stdin.take().expect("stdin");
    let _ = input.write_all(stdin);
    drop(input);
    let mut stderr = child.stderr.take().expect("stderr");
    let drain = std::thread::spawn(move || {
        let mut sink = Vec::new();
        let _ = stderr.read_to_end(&mut sink);
    });
    let mut out = String::new();
    child
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut out)
        .expect("read stdout");
    let _ = drain.join();
    let status = child.wait().expect("wait");
    assert!(status.success(), "{command} failed");
    out
}
