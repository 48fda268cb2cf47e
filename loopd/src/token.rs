//! The daemon's token: `LOOPD_AUTH_TOKEN` when the person sets one, else a random token the
//! daemon writes into its data dir (`auth-token`, mode 0600), or into the file `--token-file`
//! names, on first start and keeps.
//!
//! The file is how a client of the same account finds the token without being told (`loopctl`
//! reads it); no other local user can read it (the data dir is 0700), and no web page can.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The token file's name in the data dir.
pub const FILE: &str = "auth-token";

/// Where the token comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// `LOOPD_AUTH_TOKEN`: every request but `/health` must carry it.
    Environment,
    /// A file (the data dir's `auth-token`, or `--token-file`): needed by anyone but the
    /// daemon's own user.
    File(PathBuf),
}

/// The token and where it came from.
#[derive(Clone, Debug)]
pub struct Token {
    pub value: String,
    pub source: Source,
}

impl Token {
    /// The token `LOOPD_AUTH_TOKEN` gives, else the one in the file `path`, made on first use.
    pub fn load(path: &Path, explicit: Option<&str>) -> io::Result<Token> {
        if let Some(value) = explicit.map(str::trim).filter(|v| !v.is_empty()) {
            return Ok(Token {
                value: value.to_owned(),
                source: Source::Environment,
            });
        }
        let path = path.to_owned();
        let value = match std::fs::read_to_string(&path) {
            Ok(text) if !text.trim().is_empty() => {
                // Whatever mode it was given by hand, it is the owner's alone.
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
                text.trim().to_owned()
            }
            Ok(_) => write_new(&path, true)?,
            Err(error) if error.kind() == io::ErrorKind::NotFound => write_new(&path, false)?,
            Err(error) => return Err(error),
        };
        Ok(Token {
            value,
            source: Source::File(path),
        })
    }
}

/// 244 random bits from the system's generator, in hex.
pub fn generate() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

fn write_new(path: &Path, replace: bool) -> io::Result<String> {
    let value = generate();
    let mut options = OpenOptions::new();
    options.write(true).mode(0o600);
    if replace {
        options.truncate(true);
    } else {
        options.create_new(true);
    }
    let mut file = options.open(path)?;
    file.write_all(value.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_made_once_owner_only_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let first = Token::load(&dir.path().join(FILE), None).unwrap();
        assert_eq!(first.source, Source::File(dir.path().join(FILE)));
        assert_eq!(first.value.len(), 64);
        let mode = std::fs::metadata(dir.path().join(FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = Token::load(&dir.path().join(FILE), None).unwrap();
        assert_eq!(again.value, first.value);
        let explicit = Token::load(&dir.path().join(FILE), Some(" secret ")).unwrap();
        assert_eq!(
            (explicit.value.as_str(), explicit.source),
            ("secret", Source::Environment)
        );
    }

    #[test]
    fn a_loose_token_file_is_tightened() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        std::fs::write(&path, "abc\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(
            Token::load(&dir.path().join(FILE), None).unwrap().value,
            "abc"
        );
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
