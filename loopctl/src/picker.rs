//! The spec picker, for `run` and `prompt` given no spec on a terminal: the specs under
//! `specs_dir` with their status and last update, newest first.
//!
//! On a terminal it is a fuzzy filter, as fzf and gum are: type to filter, arrow keys to move,
//! Enter picks the highlighted spec, Esc or Ctrl-C cancels (inquire's `Select`, drawn on
//! stderr). When stdin is a terminal but stderr is not, or `TERM=dumb`, it is a line-based
//! dialogue instead, which any screen can show: a numbered list with labelled columns, a
//! number picks, words filter. Either way a bare Enter alone never picks by default: `run`
//! starts a paid agent, and an Enter pressed out of habit must not.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context, bail};
use loop_core::config::Config;
use loop_core::spec::SpecHeader;

use crate::cli::RunArgs;
use crate::workspace;

/// At most this many specs are listed at once; filtering finds the others.
const SHOWN: usize = 20;
/// Rows of the fuzzy picker's list; it scrolls.
const PAGE: usize = 12;
/// A spec file and what its header says.
#[derive(Clone, Debug, PartialEq)]
pub struct Spec {
    pub path: PathBuf,
    /// The path relative to the workspace, as shown.
    pub shown: String,
    pub header: SpecHeader,
    modified: SystemTime,
}

impl Spec {
    fn matches(&self, query: &str) -> bool {
        let haystack = format!(
            "{} {} {}",
            self.shown,
            self.header.title.as_deref().unwrap_or(""),
            self.header.status.as_deref().unwrap_or("")
        )
        .to_lowercase();
        query
            .to_lowercase()
            .split_whitespace()
            .all(|word| haystack.contains(word))
    }
}

/// The `.md` files under `<root>/<specs_dir>` (not under `plans_dir`), newest first: by
/// `**Last Updated:**`, then by modification time.
pub fn specs(root: &Path, config: &Config) -> Vec<Spec> {
    let dir = root.join(&config.typed().specs_dir);
    let plans = root.join(&config.typed().plans_dir);
    let mut found = Vec::new();
    let mut pending = vec![dir];
    while let Some(current) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&current) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let hidden = entry.file_name().to_string_lossy().starts_with('.');
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if hidden || path == plans {
                continue;
            }
            if kind.is_dir() {
                pending.push(path);
            } else if kind.is_file() && path.extension().is_some_and(|e| e == "md") {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                found.push(Spec {
                    shown: path
                        .strip_prefix(root)
                        .unwrap_or(&path)
                        .display()
                        .to_string(),
                    header: SpecHeader::parse(&text),
                    modified: entry
                        .metadata()
                        .and_then(|m| m.modified())
                        .unwrap_or(SystemTime::UNIX_EPOCH),
                    path,
                });
            }
        }
    }
    found.sort_by(|a, b| {
        b.header
            .last_updated
            .cmp(&a.header.last_updated)
            .then(b.modified.cmp(&a.modified))
            .then(a.shown.cmp(&b.shown))
    });
    found
}

/// The specs whose plan (`<plans_dir>/<stem>-plan.md`) has something left to do: a run of a
/// spec whose plan is done, or missing, would be refused.
fn unfinished(root: &Path, config: &Config, specs: Vec<Spec>) -> Vec<Spec> {
    let plans = root.join(&config.typed().plans_dir);
    specs
        .into_iter()
        .filter(|spec| {
            let Some(stem) = spec.path.file_stem() else {
                return false;
            };
            let plan = plans.join(format!("{}-plan.md", stem.to_string_lossy()));
            std::fs::read_to_string(plan).is_ok_and(|text| {
                let plan = loop_core::plan::Plan::parse(&text);
                plan.tasks_total() > 0 && !plan.is_complete()
            })
        })
        .collect()
}

/// The spec a person picks on the terminal; an error saying to pass one when stdin is not a
/// terminal. `command` names the command in messages.
pub fn pick(root: &Path, config: &Config, command: &str) -> anyhow::Result<PathBuf> {
    if !std::io::stdin().is_terminal() {
        bail!(
            "no spec given: pass the spec file, e.g. `loopctl {command} specs/feature.md` \
             (the spec picker needs a terminal)"
        );
    }
    let found = specs(root, config);
    if found.is_empty() {
        bail!(
            "no spec given, and no spec in {}: write one there (`loopctl init` writes a \
             template), or pass the spec file",
            root.join(&config.typed().specs_dir).display()
        );
    }
    let all = unfinished(root, config, found);
    if all.is_empty() {
        bail!(
            "no spec given, and every spec's plan in {} is done (or missing): add tasks to a \
             plan, or pass the spec and its plan",
            root.join(&config.typed().plans_dir).display()
        );
    }
    let dumb = std::env::var("TERM").is_ok_and(|term| term == "dumb");
    let picked = if std::io::stderr().is_terminal() && !dumb {
        fuzzy(&all, command)?
    } else {
        None
    };
    let path = match picked {
        Some(spec) => {
            let _ = writeln!(std::io::stderr(), "picked {}", spec.shown);
            spec.path.clone()
        }
        None => choose(
            &all,
            &mut std::io::stdin().lock(),
            &mut std::io::stderr().lock(),
        )?,
    };
    Ok(path)
}

/// Fills in the spec of `args` from the picker when none was given.
pub fn fill(args: &mut RunArgs, command: &str) -> anyhow::Result<()> {
    if args.spec.is_some() {
        return Ok(());
    }
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let root = workspace::root_of(&cwd);
    let config = workspace::config(args, &root)?;
    let picked = pick(&root, &config, command)?;
    args.spec = Some(picked.to_string_lossy().into_owned());
    Ok(())
}

/// One spec as a line of the fuzzy picker: its path, status, last update and title (the text
/// filtered on, too).
struct Item<'a> {
    spec: &'a Spec,
    width: usize,
}

impl std::fmt::Display for Item<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let header = &self.spec.header;
        write!(
            f,
            "{:<width$}  {:<11}  updated {:<10}  {}",
            self.spec.shown,
            header.status.as_deref().unwrap_or("no status"),
            header.last_updated.as_deref().unwrap_or("-"),
            header.title.as_deref().unwrap_or(""),
            width = self.width,
        )
    }
}

/// The fuzzy filter; `None` when the terminal cannot run it (the line dialogue is used then).
fn fuzzy<'a>(all: &'a [Spec], command: &str) -> anyhow::Result<Option<&'a Spec>> {
    use inquire::InquireError;
    let width = all
        .iter()
        .map(|s| s.shown.chars().count())
        .max()
        .unwrap_or(0);
    let items: Vec<Item> = all.iter().map(|spec| Item { spec, width }).collect();
    let message = format!("loopctl {command}: which spec?");
    let answer = inquire::Select::new(&message, items)
        .with_page_size(PAGE)
        .with_help_message("type to filter · ↑↓ to move · Enter picks · Esc cancels")
        .with_formatter(&|picked| picked.value.spec.shown.clone())
        .prompt();
    match answer {
        Ok(item) => Ok(Some(item.spec)),
        Err(InquireError::OperationCanceled | InquireError::OperationInterrupted) => {
            bail!("no spec picked: pass the spec file, or run again and pick one")
        }
        Err(InquireError::NotTTY) => Ok(None),
        Err(error) => Err(error).context("the spec picker failed"),
    }
}

/// The line dialogue, over any input and output: a numbered list, a number picks, words
/// filter, an empty line picks nothing (it says so and asks again), end of input cancels.
fn choose(
    all: &[Spec],
    input: &mut dyn BufRead,
    screen: &mut dyn Write,
) -> anyhow::Result<PathBuf> {
    let mut shown: Vec<&Spec> = all.iter().collect();
    let mut listed = false;
    loop {
        if !listed {
            list(&shown, screen)?;
            listed = true;
        }
        write!(
            screen,
            "spec: a number, or words to filter (Ctrl-D to stop): "
        )?;
        screen.flush()?;
        let mut line = String::new();
        if input.read_line(&mut line)? == 0 {
            writeln!(screen)?;
            bail!("no spec picked: pass the spec file, or run again and pick one");
        }
        let answer = line.trim();
        if answer.is_empty() {
            writeln!(
                screen,
                "an empty line picks nothing: type the number of a spec, or words to filter"
            )?;
            continue;
        }
        let picked = if let Ok(n) = answer.parse::<usize>() {
            match shown.get(n.wrapping_sub(1)) {
                Some(spec) => *spec,
                None => {
                    writeln!(screen, "no spec {n} here")?;
                    continue;
                }
            }
        } else {
            let matching: Vec<&Spec> = all.iter().filter(|s| s.matches(answer)).collect();
            listed = false;
            match matching.as_slice() {
                [] => {
                    writeln!(screen, "nothing matches {answer:?}")?;
                    shown = all.iter().collect();
                    continue;
                }
                [only] => *only,
                _ => {
                    shown = matching;
                    continue;
                }
            }
        };
        writeln!(screen, "picked {}", picked.shown)?;
        return Ok(picked.path.clone());
    }
}

/// The numbered list, under a line that names its columns.
fn list(specs: &[&Spec], screen: &mut dyn Write) -> std::io::Result<()> {
    let width = specs
        .iter()
        .take(SHOWN)
        .map(|s| s.shown.chars().count())
        .max()
        .unwrap_or(0)
        .max("SPEC".len());
    writeln!(
        screen,
        "{:>3}  {:<10}  {:<12}  {:<width$}  TITLE",
        "#", "UPDATED", "STATUS", "SPEC"
    )?;
    for (i, spec) in specs.iter().take(SHOWN).enumerate() {
        writeln!(
            screen,
            "{:>3}  {:<10}  {:<12}  {:<width$}  {}",
            i + 1,
            spec.header.last_updated.as_deref().unwrap_or("-"),
            spec.header.status.as_deref().unwrap_or("-"),
            spec.shown,
            spec.header.title.as_deref().unwrap_or(""),
        )?;
    }
    if specs.len() > SHOWN {
        writeln!(
            screen,
            "     … and {} more: type words to filter",
            specs.len() - SHOWN
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(shown: &str, status: &str, date: &str) -> Spec {
        Spec {
            path: PathBuf::from(shown),
            shown: shown.to_owned(),
            header: SpecHeader {
                title: Some(shown.trim_end_matches(".md").to_owned()),
                status: Some(status.to_owned()),
                last_updated: Some(date.to_owned()),
            },
            modified: SystemTime::UNIX_EPOCH,
        }
    }

    fn dialogue(input: &str) -> (anyhow::Result<PathBuf>, String) {
        let all = [
            spec("specs/alpha.md", "Draft", "2026-11-20"),
            spec("specs/beta.md", "Complete", "2026-10-01"),
            spec("specs/beta-two.md", "Draft", "2026-09-01"),
        ];
        let mut screen = Vec::new();
        let picked = choose(&all, &mut input.as_bytes(), &mut screen);
        (picked, String::from_utf8(screen).expect("utf-8"))
    }

    #[test]
    fn a_number_picks_that_one_under_labelled_columns() {
        let (picked, screen) = dialogue("3\n");
        assert_eq!(picked.unwrap(), Path::new("specs/beta-two.md"));
        let header = screen.lines().next().expect("a header");
        for label in ["#", "UPDATED", "STATUS", "SPEC", "TITLE"] {
            assert!(header.contains(label), "{label} in {header:?}");
        }
    }

    #[test]
    fn an_empty_line_picks_nothing_and_asks_again() {
        let (picked, screen) = dialogue("\n");
        assert!(picked.is_err(), "Enter alone picks nothing: {screen}");
        assert!(screen.contains("an empty line picks nothing"), "{screen}");
        assert!(!screen.contains("picked"), "{screen}");
        let (picked, _) = dialogue("\n\n2\n");
        assert_eq!(picked.unwrap(), Path::new("specs/beta.md"));
    }

    #[test]
    fn words_filter_and_a_single_match_is_picked() {
        let (picked, screen) = dialogue("beta\n2\n");
        assert_eq!(picked.unwrap(), Path::new("specs/beta-two.md"));
        assert!(screen.contains("picked specs/beta-two.md"), "{screen}");
        assert_eq!(
            dialogue("complete\n").0.unwrap(),
            Path::new("specs/beta.md")
        );
        let (picked, screen) = dialogue("zzz\n");
        assert!(screen.contains("nothing matches \"zzz\""), "{screen}");
        assert!(picked.is_err(), "end of input stops the picker");
    }
}
