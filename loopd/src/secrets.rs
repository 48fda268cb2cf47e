//! The daemon's secrets — its token, a store URL with a password — out of reach of the
//! processes it starts.
//!
//! Children never get a `LOOPD_*` variable ([`loop_runtime::process`]), but that was not
//! enough: an agent runs as the daemon's user, and `/proc/<loopd>/environ` (the environment the
//! daemon was started with, which `unsetenv` does not touch) and the environ of the reaper
//! (started from the daemon's own environment) are readable by that user. So once the options
//! are read, before any thread or child starts, [`forget`]:
//!
//! - overwrites the values of the secret variables in place, wherever the environment holds
//!   them (the block the kernel shows in `/proc/<pid>/environ` included), and removes them;
//! - makes the daemon not dumpable, so processes of its user can no longer read its memory,
//!   its environment or its open files through `/proc`, nor attach to it with `ptrace` (what
//!   its children exec is dumpable again: the flag does not pass through `execve`).
//!
//! The reaper is started with an empty environment ([`loop_runtime::process::reaper`]).
//! A URL given as `--store` on the command line is in `/proc/<pid>/cmdline`, which `ps` shows
//! to every user: the daemon says so at start; `LOOPD_STORE` or `--store-file` keep it out.

/// The variables whose values are secrets: the token (loopd's and loopctl's name for it) and
/// the store's URL, which may carry a password.
pub const VARIABLES: &[&str] = &["LOOPD_AUTH_TOKEN", "LOOPD_TOKEN", "LOOPD_STORE"];

/// Forgets the secret variables (see the module's header). Call it once the options are
/// parsed, before the async runtime or any other thread starts.
pub fn forget() {
    wipe_environment();
    // Best effort: a kernel without the flag still has the variables gone.
    let _ = nix::sys::prctl::set_dumpable(false);
}

/// Overwrites the values of [`VARIABLES`] with NUL bytes where they lie, then unsets them.
#[allow(unsafe_code)]
fn wipe_environment() {
    // SAFETY: called while the process has one thread (before the async runtime starts), so
    // nothing reads or changes the environment meanwhile. `environ` is the C library's array of
    // pointers to `NAME=value\0` strings, ended by a null pointer; each string is writable
    // memory (the stack block execve made, or the heap for setenv), and only its value's bytes,
    // before its terminating NUL, are overwritten. `remove_var` then drops the pointers.
    unsafe {
        let mut entry = libc::environ;
        while !entry.is_null() && !(*entry).is_null() {
            let text = std::ffi::CStr::from_ptr(*entry).to_bytes();
            if let Some(equals) = text.iter().position(|byte| *byte == b'=')
                && VARIABLES
                    .iter()
                    .any(|name| name.as_bytes() == &text[..equals])
            {
                let value = (*entry).add(equals + 1);
                std::ptr::write_bytes(value, 0, text.len() - equals - 1);
            }
            entry = entry.add(1);
        }
        for name in VARIABLES {
            std::env::remove_var(name);
        }
    }
}

/// Whether a store URL given on the command line carries a password (`scheme://user:pass@…`),
/// which `ps` would show.
pub fn shows_password(url: &str) -> bool {
    let Some((_, rest)) = url.split_once("://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    authority
        .rsplit_once('@')
        .is_some_and(|(credentials, _)| credentials.contains(':'))
        || url.contains("password=")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_in_a_store_url_is_noticed() {
        assert!(shows_password("postgres://loop:hunter2@db/loop"));
        assert!(shows_password(
            "postgres://db/loop?user=loop&password=hunter2"
        ));
        assert!(!shows_password("postgres://loop@db/loop"));
        assert!(!shows_password("postgres://db:5432/loop"));
        assert!(!shows_password("sqlite:/srv/loop/loopd.db"));
        assert!(!shows_password("/srv/a:b@c/loopd.db"));
    }
}
