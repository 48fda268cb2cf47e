//! Ctrl-C while following a run of the daemon (`run --follow`, `tail -f`): following stops, the
//! run does not. Without a word a person would think they had stopped the run, so the handler
//! says that it goes on in the daemon and how to follow it again, then exits 130 (128 + SIGINT),
//! as a shell reports a command stopped by Ctrl-C.

use std::io::Write;

/// From now on, Ctrl-C ends this process with status 130 after saying, on stderr, that run
/// `name` goes on in the daemon and how to reattach to it.
pub fn leave_running(name: &str) {
    let name = name.to_owned();
    // Set once per process: only one run is followed. Should a handler be set already, it
    // stays (it says the same).
    let _ = ctrlc::set_handler(move || {
        // A status line drawn in place is taken off first.
        let erase = if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            "\r\x1b[2K"
        } else {
            "\n"
        };
        let _ = writeln!(
            std::io::stderr().lock(),
            "{erase}loopctl: stopped following; run {name} goes on in the daemon. \
             `loopctl tail {name} --follow` follows it again, `loopctl cancel {name}` stops it."
        );
        std::process::exit(130);
    });
}
