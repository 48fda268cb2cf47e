//! Small real-looking projects to run loops on, beside the stub agents that work on them.
//!
//! `wordfreq` (`projects/wordfreq/`): a Python package that counts the words of a text, with a
//! failing unittest, a spec, and a plan of four tasks. `agents/wordfreq.sh` does its tasks for
//! real, one an iteration (each task's files are in `projects/wordfreq/task-N/`), and makes the
//! changes a person asks for in review (`projects/wordfreq/changes/`).
//!
//! `loops` ([`add_loops`]): a measured program for experiment mode, whose cost is the loop count
//! in `loops.txt`; `agents/experimenter.sh` changes that count in a known order.

use std::path::{Path, PathBuf};

use crate::repo::git;

/// The wordfreq spec, relative to its repository.
pub const WORDFREQ_SPEC: &str = "specs/wordfreq.md";
/// The verification command of the wordfreq project.
pub const WORDFREQ_VERIFY: &str = "python3 -m unittest -q";

/// The wordfreq project as it starts (`start/`), committed on `main` at `path`; `path`.
pub fn wordfreq(path: impl Into<PathBuf>) -> PathBuf {
    let repo = path.into();
    let start = Path::new(env!("CARGO_MANIFEST_DIR")).join("projects/wordfreq/start");
    copy_tree(&start, &repo);
    git(&repo, &["init", "-q", "-b", "main"]);
    git(&repo, &["config", "user.name", "Ada Lovelace"]);
    git(&repo, &["config", "user.email", "ada@example.invalid"]);
    git(&repo, &["add", "-A"]);
    git(
        &repo,
        &["commit", "-qm", "wordfreq: count the words of a text"],
    );
    repo
}

/// The measured program of experiment mode's tests (composed for them): runs as many loops as
/// `loops.txt` says, then prints their count with ±1% random jitter as its last line.
pub const LOOPS_BENCH: &str = r#"#!/bin/sh
n=$(cat loops.txt)
i=0
while [ "$i" -lt "$n" ]; do i=$((i + 1)); done
j=$(od -An -N2 -tu2 /dev/urandom | tr -d ' ')
echo "ran $n loops"
awk -v n="$n" -v j="$j" 'BEGIN { printf "%.3f\n", n * (1 + (j / 65535 - 0.5) * 0.02) }'
"#;

/// Adds the measured program (`bench.sh`, `loops.txt` at 1000) to the repository at `repo`
/// and commits it; what an experiment measures with `sh bench.sh`.
pub fn add_loops(repo: &Path) {
    std::fs::write(repo.join("loops.txt"), "1000\n").expect("loops.txt");
    std::fs::write(repo.join("bench.sh"), LOOPS_BENCH).expect("bench.sh");
    git(repo, &["add", "-A"]);
    git(repo, &["commit", "-qm", "the measured program"]);
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create the project dir");
    for entry in std::fs::read_dir(from).expect("read the project") {
        let entry = entry.expect("an entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("a type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy a project file");
        }
    }
}
