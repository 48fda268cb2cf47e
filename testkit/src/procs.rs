//! The processes of this machine as `/proc` shows them: which carry a variable in their
//! environment (an agent of a run carries `LOOP_RUN_ID`), which descend from a process (a
//! daemon's agents, its reaper), and what state they are in.
//!
//! A process may end while it is read: whatever cannot be read is skipped, never an error.

use std::collections::{HashMap, HashSet};
use std::path::Path;

/// One process: its id, its parent, its state letter (`R`, `S`, `T` for stopped, `Z`…) and the
/// variables of its environment that were asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proc {
    pub pid: i32,
    pub ppid: i32,
    pub state: char,
    pub env: HashMap<String, String>,
}

/// Every live process (zombies aside) with the variables `names` of its environment that it
/// has; the caller filters.
pub fn all(names: &[&str]) -> Vec<Proc> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| read(pid, names))
        .filter(|proc| proc.state != 'Z' && proc.state != 'X')
        .collect()
}

/// The processes whose environment has `name=value`.
pub fn with_env(name: &str, value: &str) -> Vec<Proc> {
    all(&[name])
        .into_iter()
        .filter(|proc| proc.env.get(name).is_some_and(|v| v == value))
        .collect()
}

/// `root` and every process descending from it, as the parent links are now.
pub fn tree(root: i32) -> Vec<i32> {
    let procs = all(&[]);
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    for proc in &procs {
        children.entry(proc.ppid).or_default().push(proc.pid);
    }
    let mut seen = HashSet::new();
    let mut todo = vec![root];
    while let Some(pid) = todo.pop() {
        if seen.insert(pid) {
            todo.extend(children.get(&pid).into_iter().flatten());
        }
    }
    procs
        .iter()
        .map(|proc| proc.pid)
        .filter(|pid| seen.contains(pid))
        .collect()
}

fn read(pid: i32, names: &[&str]) -> Option<Proc> {
    let dir = Path::new("/proc").join(pid.to_string());
    let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
    // `pid (comm) state ppid …`: the name may hold spaces and parentheses, the last `)` ends it.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    let mut env = HashMap::new();
    if !names.is_empty()
        && let Ok(bytes) = std::fs::read(dir.join("environ"))
    {
        for pair in bytes.split(|b| *b == 0) {
            let pair = String::from_utf8_lossy(pair);
            if let Some((key, value)) = pair.split_once('=')
                && names.contains(&key)
            {
                env.insert(key.to_owned(), value.to_owned());
            }
        }
    }
    Some(Proc {
        pid,
        ppid,
        state,
        env,
    })
}
