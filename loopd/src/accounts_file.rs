//! The accounts the daemon declares (`loopd --accounts FILE`, `LOOPD_ACCOUNTS`; `contract.md`
//! §7): one `[[account]]` table each, with its `name`, its `agent`, the environment its calls
//! run with (`[account.env]`: where its credentials are, such as `CLAUDE_CONFIG_DIR` or
//! `CODEX_HOME`) and, optionally, `api_key_env`: the daemon's variable holding its API key,
//! passed to the agent under the name it reads (`ANTHROPIC_API_KEY`, `OPENAI_API_KEY`).
//!
//! Credentials stay here, on the daemon's side: a run names an account or a pool, and its
//! frozen configuration never holds where the credentials are.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, bail};
use loop_core::config::AgentName;
use loop_runtime::DeclaredAccount;
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    account: Vec<Entry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    name: String,
    agent: String,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    api_key_env: Option<String>,
}

/// Variables the loop sets for every call itself: an account may not replace them.
const RESERVED: &[&str] = &["LOOP_", "PATH", "HOME"];

/// Reads and checks the accounts file at `path`, taking API keys from `env`.
pub fn load(
    path: &Path,
    env: impl Fn(&str) -> Option<String>,
) -> anyhow::Result<Vec<DeclaredAccount>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the accounts file {}", path.display()))?;
    parse(&text, env).with_context(|| format!("the accounts file {}", path.display()))
}

/// The accounts `text` declares.
pub fn parse(
    text: &str,
    env: impl Fn(&str) -> Option<String>,
) -> anyhow::Result<Vec<DeclaredAccount>> {
    let file: File = toml::from_str(text)?;
    let mut seen = std::collections::BTreeSet::new();
    let mut accounts = Vec::new();
    for entry in file.account {
        let name = entry.name.trim().to_owned();
        if !valid_name(&name) {
            bail!(
                "account name {:?}: use 1 to 64 letters, digits, '-', '_' or '.'",
                entry.name
            );
        }
        if !seen.insert(name.clone()) {
            bail!("account {name} is declared twice");
        }
        let key_var = match AgentName::parse(&entry.agent) {
            AgentName::Claude => Some("ANTHROPIC_API_KEY"),
            AgentName::Codex => Some("OPENAI_API_KEY"),
            AgentName::Command => None,
            AgentName::Other(other) => {
                bail!("account {name}: agent {other:?} is not claude, codex or command")
            }
        };
        let mut vars = BTreeMap::new();
        for (key, value) in entry.env {
            if !valid_var(&key) {
                bail!("account {name}: {key:?} is not an environment variable's name");
            }
            if RESERVED
                .iter()
                .any(|r| key == *r || (r.ends_with('_') && key.starts_with(r)))
            {
                bail!("account {name}: {key} is the loop's own and cannot be set per account");
            }
            vars.insert(key, value);
        }
        if let Some(var) = entry.api_key_env {
            let Some(key_var) = key_var else {
                bail!("account {name}: api_key_env is for claude and codex accounts");
            };
            let key = env(&var)
                .filter(|key| !key.trim().is_empty())
                .with_context(|| {
                    format!(
                        "account {name}: api_key_env names {var}, which the daemon does not have"
                    )
                })?;
            vars.insert(key_var.to_owned(), key);
        }
        accounts.push(DeclaredAccount {
            name,
            agent: entry.agent,
            env: vars,
        });
    }
    Ok(accounts)
}

fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn valid_var(name: &str) -> bool {
    !name.is_empty()
        && !name.as_bytes()[0].is_ascii_digit()
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn three_accounts_with_their_credential_places() {
        let text = r#"
            [[account]]
            name = "work-1"
            agent = "claude"
            env = { CLAUDE_CONFIG_DIR = "/home/me/.claude-work-1" }

            [[account]]
            name = "work-2"
            agent = "claude"
            api_key_env = "WORK2_KEY"

            [[account]]
            name = "personal"
            agent = "codex"
            [account.env]
            CODEX_HOME = "/home/me/.codex"
        "#;
        let env = |name: &str| (name == "WORK2_KEY").then(|| "sk-test".to_owned());
        let accounts = parse(text, env).expect("parses");
        let names: Vec<&str> = accounts.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["work-1", "work-2", "personal"]);
        assert_eq!(
            accounts[0].env.get("CLAUDE_CONFIG_DIR").map(String::as_str),
            Some("/home/me/.claude-work-1")
        );
        assert_eq!(
            accounts[1].env.get("ANTHROPIC_API_KEY").map(String::as_str),
            Some("sk-test")
        );
        assert_eq!(accounts[2].agent, "codex");
    }

    #[test]
    fn mistakes_are_refused_with_the_account_named() {
        for (text, says) in [
            (
                "[[account]]\nname = \"a b\"\nagent = \"claude\"",
                "account name",
            ),
            (
                "[[account]]\nname = \"a\"\nagent = \"claude\"\n[[account]]\nname = \"a\"\nagent = \"codex\"",
                "declared twice",
            ),
            ("[[account]]\nname = \"a\"\nagent = \"gpt\"", "not claude"),
            (
                "[[account]]\nname = \"a\"\nagent = \"claude\"\nenv = { LOOP_RUN_ID = \"x\" }",
                "the loop's own",
            ),
            (
                "[[account]]\nname = \"a\"\nagent = \"claude\"\nenv = { \"A=B\" = \"x\" }",
                "environment variable",
            ),
            (
                "[[account]]\nname = \"a\"\nagent = \"claude\"\napi_key_env = \"NOPE\"",
                "does not have",
            ),
            (
                "[[account]]\nname = \"a\"\nagent = \"claude\"\ncolour = 1",
                "unknown field",
            ),
        ] {
            let error = format!("{:#}", parse(text, no_env).expect_err(text));
            assert!(error.contains(says), "{text}: {error}");
        }
    }

    proptest! {
        /// Any text: an answer, never a panic; what is accepted is well-formed.
        #[test]
        fn any_text_is_refused_or_well_formed(text in "\\PC{0,200}") {
            if let Ok(accounts) = parse(&text, no_env) {
                for account in accounts {
                    prop_assert!(valid_name(&account.name));
                    prop_assert!(account.env.keys().all(|k| valid_var(k)));
                }
            }
        }

        #[test]
        fn generated_files_round_trip(
            names in proptest::collection::btree_set("[a-z][a-z0-9_.-]{0,10}", 0..5),
            dir in "[ -~]{0,30}",
        ) {
            let text: String = names
                .iter()
                .map(|name| format!(
                    "[[account]]\nname = {name:?}\nagent = \"claude\"\n[account.env]\nCLAUDE_CONFIG_DIR = {dir:?}\n"
                ))
                .collect();
            let accounts = parse(&text, no_env).expect("parses");
            let got: Vec<&str> = accounts.iter().map(|a| a.name.as_str()).collect();
            let want: Vec<&str> = names.iter().map(String::as_str).collect();
            prop_assert_eq!(got, want);
            for account in &accounts {
                prop_assert_eq!(account.env.get("CLAUDE_CONFIG_DIR"), Some(&dir));
            }
        }
    }
}
