//! ARCHITECTURE.md names every source file: a newcomer who opens a file can find what it is for,
//! and a file added without a word about it fails here rather than drifting out of the tour.

use std::path::{Path, PathBuf};

/// The workspace root (this crate lives in `testkit/`).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("testkit has a parent")
        .to_owned()
}

/// Every `.rs` file under `dir`, as paths relative to `base`, sorted.
fn sources(base: &Path, dir: &Path, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            sources(base, &path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let relative = path.strip_prefix(base).expect("under the base");
            out.push(relative.to_string_lossy().replace('\\', "/"));
        }
    }
}

/// The `### ` section of the crate in directory `dir`: its heading names the crate (`` `dir` ``)
/// or its directory (`` `dir/` ``); up to the next heading.
fn section<'a>(doc: &'a str, dir: &str) -> Option<&'a str> {
    let names = [format!("`{dir}`"), format!("`{dir}/`")];
    let start = doc.match_indices("\n### ").find_map(|(at, _)| {
        let heading = doc[at + 1..].lines().next()?;
        names
            .iter()
            .any(|name| heading.contains(name.as_str()))
            .then_some(at + 1)
    })?;
    let end = doc[start + 4..]
        .find("\n## ")
        .into_iter()
        .chain(doc[start + 4..].find("\n### "))
        .min()
        .map_or(doc.len(), |end| start + 4 + end);
    Some(&doc[start..end])
}

/// The backticked words of `text`.
fn quoted(text: &str) -> Vec<&str> {
    text.split('`').skip(1).step_by(2).collect()
}

/// Whether `section` names `file` (relative to its crate, `src/...`, in directory `dir`): by a
/// quoted path that ends it at a `/` (`src/driver/claim.rs`, `driver/claim.rs`,
/// `testkit/src/lib.rs`), or by its bare file name once the section has quoted its directory
/// (`` `src/account/` — … `decide.rs` ``).
fn names(section: &str, dir: &str, file: &str) -> bool {
    let full = format!("{dir}/{file}");
    let (parent, base) = file.rsplit_once('/').expect("under src/");
    let parent = format!("{dir}/{parent}");
    let words = quoted(section);
    words.iter().map(|word| word.trim()).any(|word| {
        if word.contains('/') && word.ends_with(".rs") {
            ends_with_path(&full, word)
        } else {
            word == base
                && words
                    .iter()
                    .any(|w| ends_with_path(&parent, w.trim().trim_end_matches('/')))
        }
    })
}

/// Whether `path` ends with the whole components `tail` (`a/b/c` ends with `b/c`, not `/c`).
fn ends_with_path(path: &str, tail: &str) -> bool {
    !tail.is_empty()
        && path.ends_with(tail)
        && (path.len() == tail.len() || path[..path.len() - tail.len()].ends_with('/'))
}

#[test]
fn architecture_md_names_every_source_file_of_every_crate() {
    let root = root();
    let doc = std::fs::read_to_string(root.join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).expect("Cargo.toml");
    let members: Vec<&str> = manifest
        .split("members = [")
        .nth(1)
        .and_then(|rest| rest.split(']').next())
        .expect("the workspace's members")
        .split(',')
        .map(|m| m.trim().trim_matches('"'))
        .filter(|m| !m.is_empty())
        .collect();
    assert!(members.len() >= 9, "{members:?}");
    let mut unnamed = Vec::new();
    for dir in members {
        let crate_dir = root.join(dir);
        let mut files = Vec::new();
        sources(&crate_dir, &crate_dir.join("src"), &mut files);
        files.sort();
        let Some(section) = section(&doc, dir) else {
            unnamed.push(format!("{dir}: no `### `{dir}`` section"));
            continue;
        };
        for file in files {
            if !names(section, dir, &file) {
                unnamed.push(format!("{dir}/{file}"));
            }
        }
    }
    assert!(
        unnamed.is_empty(),
        "ARCHITECTURE.md does not name these files in their crate's section:\n{}",
        unnamed.join("\n")
    );
}

#[test]
fn a_file_is_named_by_its_path_or_by_its_name_under_its_quoted_directory() {
    let section = "- `src/lib.rs`; `src/account/` — `decide.rs` and `turn.rs`; \
                   `driver/claim.rs`; `testkit/src/repo.rs`";
    for file in [
        "src/lib.rs",
        "src/account/decide.rs",
        "src/account/turn.rs",
        "src/driver/claim.rs",
        "src/repo.rs",
    ] {
        assert!(names(section, "testkit", file), "{file}");
    }
    for file in [
        "src/decide.rs",
        "src/other/turn.rs",
        "src/lib2.rs",
        "src/b/lib.rs",
        "src/xdriver/claim.rs",
    ] {
        assert!(!names(section, "testkit", file), "{file}");
    }
}
