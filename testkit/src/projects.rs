//! Small real-looking projects to run loops on, beside the stub agents that work on them.
//!
//! `wordfreq` (`projects/wordfreq/`): a Python package that counts the words of a text, with a
//! failing unittest, a spec, and a plan of four tasks. `agents/wordfreq.sh` does its tasks for
//! real, one an iteration (each task's files are in `projects/wordfreq/task-N/`), and makes the
//! changes a person asks for in review (`projects/wordfreq/changes/`).

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
