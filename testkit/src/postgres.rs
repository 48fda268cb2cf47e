//! A real PostgreSQL server for a test: `initdb` and `pg_ctl` in a temp dir, listening on an
//! ephemeral loopback port, stopped (immediately) and deleted when dropped.
//!
//! PostgreSQL refuses to run as root, so as root the cluster belongs to `nobody` and every
//! server command runs as that user (`runuser`). The binaries are looked for on `PATH`, then in
//! Debian's `/usr/lib/postgresql/<version>/bin`. Without them, [`Postgres::start`] says the
//! test is skipped and why, or fails under `LOOP_REQUIRE_SYSTEM_TESTS` (as `.ci/run` sets).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A running server; `url` reaches its `postgres` database as the superuser `loop`.
#[derive(Debug)]
pub struct Postgres {
    pub url: String,
    pub port: u16,
    bin: PathBuf,
    data: PathBuf,
    as_user: Option<&'static str>,
    /// The server's `-o` options, for a start after a stop.
    options: String,
    _dir: tempfile::TempDir,
}

/// How [`Postgres::stop`] and [`Postgres::restart`] shut the server down (`pg_ctl -m`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shutdown {
    /// Clients are disconnected and the server stops cleanly (`-m fast`).
    Fast,
    /// The server dies at once, as after a crash; it recovers from its WAL at the next start
    /// (`-m immediate`).
    Immediate,
}

impl Shutdown {
    fn mode(self) -> &'static str {
        match self {
            Shutdown::Fast => "fast",
            Shutdown::Immediate => "immediate",
        }
    }
}

/// The user a root test runs the server as.
const UNPRIVILEGED: &str = "nobody";

impl Postgres {
    /// A fresh server, or `None` (said loudly on stderr) when PostgreSQL is not installed and
    /// `LOOP_REQUIRE_SYSTEM_TESTS` is not set.
    pub fn start(test: &str) -> Option<Postgres> {
        let Some(bin) = find_bin() else {
            let why = format!(
                "SKIPPED {test}: no PostgreSQL server binaries (initdb, pg_ctl) on PATH or in \
                 /usr/lib/postgresql/*/bin (Debian: apt-get install postgresql)"
            );
            assert!(
                std::env::var_os("LOOP_REQUIRE_SYSTEM_TESTS").is_none(),
                "{why}, and LOOP_REQUIRE_SYSTEM_TESTS is set"
            );
            eprintln!("{why}");
            return None;
        };
        let as_user = nix::unistd::geteuid().is_root().then_some(UNPRIVILEGED);
        let dir = tempfile::Builder::new()
            .prefix("loop-pg-")
            .tempdir()
            .expect("a temp dir for the cluster");
        let data = dir.path().join("data");
        if as_user.is_some() {
            chown_to_nobody(dir.path());
        }
        let port = free_port();
        let options = format!(
            "-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories='' \
             -c fsync=on -c max_connections=200"
        );
        let server = Postgres {
            url: format!("postgres://loop@127.0.0.1:{port}/postgres"),
            port,
            bin,
            data,
            as_user,
            options,
            _dir: dir,
        };
        server.run(
            "initdb",
            &[
                "-D",
                path_str(&server.data),
                "-U",
                "loop",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        );
        server.start_again();
        Some(server)
    }

    /// Starts the server again after [`Postgres::stop`], on the same port and data, and waits
    /// until it answers.
    pub fn start_again(&self) {
        let log = self.data.with_file_name("server.log");
        self.run(
            "pg_ctl",
            &[
                "-D",
                path_str(&self.data),
                "-l",
                path_str(&log),
                "-o",
                &self.options,
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
        self.wait_until_it_answers();
    }

    /// Stops the server (`pg_ctl stop -m fast|immediate`): every client's connection ends, and
    /// new ones are refused until [`Postgres::start_again`].
    pub fn stop(&self, how: Shutdown) {
        self.run(
            "pg_ctl",
            &["-D", path_str(&self.data), "-m", how.mode(), "-w", "stop"],
        );
    }

    /// `pg_ctl restart -m fast|immediate`: down and up again at once, as an operator's restart
    /// or a crash the service manager answers is.
    pub fn restart(&self, how: Shutdown) {
        let log = self.data.with_file_name("server.log");
        self.run(
            "pg_ctl",
            &[
                "-D",
                path_str(&self.data),
                "-l",
                path_str(&log),
                "-o",
                &self.options,
                "-m",
                how.mode(),
                "-w",
                "-t",
                "60",
                "restart",
            ],
        );
        self.wait_until_it_answers();
    }

    /// One of the server's programs, run as the cluster's owner.
    fn command(&self, program: &str) -> Command {
        // Beside `initdb`, or beside what it links to (a PATH of symlinks to the server's two
        // programs lacks the clients), or on the PATH.
        let linked = std::fs::canonicalize(self.bin.join("initdb"))
            .ok()
            .and_then(|initdb| initdb.parent().map(|dir| dir.join(program)));
        let path = [Some(self.bin.join(program)), linked]
            .into_iter()
            .flatten()
            .find(|path| path.is_file())
            .unwrap_or_else(|| PathBuf::from(program));
        let mut command = match self.as_user {
            Some(user) => {
                let mut command = Command::new("runuser");
                command.args(["-u", user, "--"]).arg(&path);
                command
            }
            None => Command::new(&path),
        };
        command.current_dir("/").stdin(Stdio::null());
        command
    }

    /// Runs one of the server's programs, panicking with its output when it fails.
    fn run(&self, program: &str, args: &[&str]) {
        let output = self
            .command(program)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
        assert!(
            output.status.success(),
            "{program} {args:?} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    fn wait_until_it_answers(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "PostgreSQL did not listen on port {} within a minute",
            self.port
        );
    }

    /// Runs SQL as the superuser `loop` on the database of [`Postgres::url`] (`psql`), panicking
    /// with what it said when it fails.
    pub fn sql(&self, statements: &str) {
        let database = self.url.rsplit('/').next().unwrap_or("postgres");
        let port = self.port.to_string();
        let mut args = self.as_loop(&port).to_vec();
        args.extend([
            "-d",
            database,
            "-v",
            "ON_ERROR_STOP=1",
            "-q",
            "-c",
            statements,
        ]);
        self.run("psql", &args);
    }

    /// The arguments that reach this server as the superuser `loop`.
    fn as_loop<'a>(&self, port: &'a str) -> [&'a str; 6] {
        ["-h", "127.0.0.1", "-p", port, "-U", "loop"]
    }

    /// A URL of a new, empty database on this server (each store of a test its own).
    pub fn database(&self, name: &str) -> String {
        let port = self.port.to_string();
        let mut args = self.as_loop(&port).to_vec();
        args.push(name);
        self.run("createdb", &args);
        format!("postgres://loop@127.0.0.1:{}/{name}", self.port)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .args(["-D", path_str(&self.data), "-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("temp paths are UTF-8")
}

/// The directory holding `initdb` and `pg_ctl`.
fn find_bin() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default();
    let mut debian: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|dirs| dirs.flatten().map(|d| d.path().join("bin")).collect())
        .unwrap_or_default();
    // The newest version first.
    debian.sort_by_key(|dir| {
        std::cmp::Reverse(
            dir.parent()
                .and_then(|v| v.file_name())
                .and_then(|v| v.to_str())
                .and_then(|v| v.parse::<u32>().ok())
                .unwrap_or(0),
        )
    });
    on_path
        .into_iter()
        .chain(debian)
        .find(|dir| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file())
}

fn chown_to_nobody(dir: &Path) {
    let user = nix::unistd::User::from_name(UNPRIVILEGED)
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("no user {UNPRIVILEGED} to run PostgreSQL as"));
    nix::unistd::chown(dir, Some(user.uid), Some(user.gid)).expect("chown the cluster dir");
}

/// A loopback port nothing listens on just now.
fn free_port() -> u16 {
    TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}
