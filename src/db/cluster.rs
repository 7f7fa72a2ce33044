//! A private PostgreSQL cluster, started from the machine's PostgreSQL server binaries.
//!
//! Used when no `DATABASE_URL` is configured, and by the test harness. The cluster lives in a
//! directory of its own, listens only on a unix socket in that directory (no TCP port), and
//! trusts local connections — which the socket's 0700 permissions limit to its owner.
//!
//! PostgreSQL refuses to run as root; when this process is root, the cluster runs as the
//! unprivileged `postgres` user, which then owns the cluster directory.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use anyhow::{Context, bail};
use nix::fcntl::{Flock, FlockArg};
use nix::unistd::{Gid, Uid, User, chown};

/// The oldest major version the migrations run on (`UNIQUE NULLS NOT DISTINCT`).
pub const MINIMUM_MAJOR_VERSION: u32 = 15;

/// The programs a cluster needs.
const PROGRAMS: [&str; 3] = ["initdb", "pg_ctl", "postgres"];

/// What to install when no binaries are found.
const INSTALL_HINT: &str = "install the PostgreSQL server (Debian/Ubuntu: `apt-get install \
     postgresql`; Fedora: `dnf install postgresql-server`; macOS: `brew install postgresql@16`), \
     point PG_BIN_DIR at its bin directory, or set DATABASE_URL to use a running server";

/// A directory holding `initdb`, `pg_ctl` and `postgres` of one PostgreSQL version.
#[derive(Debug, Clone)]
pub struct PgBinaries {
    dir: PathBuf,
    major_version: u32,
}

/// Where to look for PostgreSQL binaries, in order.
#[derive(Debug, Clone, Default)]
pub struct BinarySearch {
    /// A directory named by configuration; when given, the only place looked at.
    pub explicit: Option<PathBuf>,
    /// The directories of `PATH`.
    pub path: Vec<PathBuf>,
    /// Whether to ask `pg_config --bindir`.
    pub use_pg_config: bool,
    /// Directories holding one subdirectory per version (`/usr/lib/postgresql/15/bin`).
    pub versioned_roots: Vec<PathBuf>,
}

impl BinarySearch {
    /// The usual places: `PATH`, `pg_config --bindir`, `/usr/lib/postgresql/*/bin`.
    pub fn system(explicit: Option<PathBuf>) -> Self {
        Self {
            explicit,
            path: std::env::var_os("PATH")
                .map(|path| std::env::split_paths(&path).collect())
                .unwrap_or_default(),
            use_pg_config: true,
            versioned_roots: vec![PathBuf::from("/usr/lib/postgresql")],
        }
    }

    fn candidates(&self) -> Vec<PathBuf> {
        if let Some(dir) = &self.explicit {
            return vec![dir.clone()];
        }
        let mut found = self.path.clone();
        if self.use_pg_config {
            let bindir = Command::new("pg_config").arg("--bindir").output();
            if let Ok(output) = bindir
                && output.status.success()
            {
                found.push(PathBuf::from(
                    String::from_utf8_lossy(&output.stdout).trim(),
                ));
            }
        }
        for root in &self.versioned_roots {
            let Ok(entries) = fs::read_dir(root) else {
                continue;
            };
            let mut versions: Vec<(Vec<u32>, PathBuf)> = entries
                .flatten()
                .filter_map(|entry| {
                    let name = entry.file_name().to_string_lossy().into_owned();
                    let version: Option<Vec<u32>> =
                        name.split('.').map(|part| part.parse().ok()).collect();
                    Some((version?, entry.path().join("bin")))
                })
                .collect();
            versions.sort_by(|a, b| b.0.cmp(&a.0));
            found.extend(versions.into_iter().map(|(_, dir)| dir));
        }
        found
    }
}

fn is_executable(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

impl PgBinaries {
    /// Finds the first directory of `search` holding all the server programs.
    pub fn locate(search: &BinarySearch) -> anyhow::Result<Self> {
        let candidates = search.candidates();
        let Some(dir) = candidates.into_iter().find(|dir| {
            PROGRAMS
                .iter()
                .all(|program| is_executable(&dir.join(program)))
        }) else {
            match &search.explicit {
                Some(dir) => bail!(
                    "{} does not hold the PostgreSQL server programs ({}): {INSTALL_HINT}",
                    dir.display(),
                    PROGRAMS.join(", ")
                ),
                None => bail!(
                    "no PostgreSQL server binaries ({}) were found on PATH, through `pg_config \
                     --bindir` or under /usr/lib/postgresql/*/bin: {INSTALL_HINT}",
                    PROGRAMS.join(", ")
                ),
            }
        };
        let output = Command::new(dir.join("postgres"))
            .arg("--version")
            .output()
            .with_context(|| format!("cannot run {}/postgres", dir.display()))?;
        let text = String::from_utf8_lossy(&output.stdout);
        let major_version = text
            .split_whitespace()
            .find_map(|word| word.split('.').next()?.parse::<u32>().ok())
            .with_context(|| format!("cannot read the PostgreSQL version from {text:?}"))?;
        if major_version < MINIMUM_MAJOR_VERSION {
            bail!(
                "PostgreSQL {major_version} at {} is too old: version {MINIMUM_MAJOR_VERSION} or \
                 newer is required; {INSTALL_HINT}",
                dir.display()
            );
        }
        Ok(Self { dir, major_version })
    }

    /// The directory holding the programs.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The major version, such as 15.
    pub fn major_version(&self) -> u32 {
        self.major_version
    }
}

/// How a cluster is set up.
#[derive(Debug, Clone, Default)]
pub struct ClusterOptions {
    /// The directory the cluster lives in; created when missing.
    pub root: PathBuf,
    /// Whether writes must survive a machine crash. Test clusters trade that for speed.
    pub durable: bool,
    /// Further server settings (name and value as written in `postgresql.conf`), such as
    /// `shared_preload_libraries` for a benchmark's statistics.
    pub settings: Vec<(String, String)>,
    /// When set, the cluster is created as a streaming replica of the running cluster in
    /// this directory (`pg_basebackup -R`): read-only, following the primary's writes.
    pub standby_of: Option<PathBuf>,
}

/// A running private cluster. Dropping it stops the server.
#[derive(Debug)]
pub struct Cluster {
    binaries: PgBinaries,
    root: PathBuf,
    owner: Option<(Uid, Gid)>,
    running: bool,
    // Held for the cluster's lifetime: one server process per cluster directory.
    _lock: Flock<File>,
}

/// The unprivileged account that runs the cluster when this process is root.
fn cluster_owner() -> anyhow::Result<Option<(Uid, Gid)>> {
    if !Uid::effective().is_root() {
        return Ok(None);
    }
    let user = User::from_name("postgres")
        .context("cannot look up the `postgres` user")?
        .context(
            "PostgreSQL refuses to run as root and there is no `postgres` user to run it as: \
             run as a normal user, or create the user (installing the PostgreSQL server \
             package does)",
        )?;
    Ok(Some((user.uid, user.gid)))
}

/// Checks that `uid` can enter every directory above `dir`, which PostgreSQL needs.
fn check_reachable(dir: &Path, uid: Uid, gid: Gid) -> anyhow::Result<()> {
    use std::os::unix::fs::MetadataExt;
    for ancestor in dir.ancestors().skip(1) {
        let meta = fs::metadata(ancestor)?;
        let mode = meta.mode();
        let searchable = if meta.uid() == uid.as_raw() {
            mode & 0o100 != 0
        } else if meta.gid() == gid.as_raw() {
            mode & 0o010 != 0
        } else {
            mode & 0o001 != 0
        };
        if !searchable {
            bail!(
                "the postgres user, which runs the private cluster because this process is root, \
                 cannot enter {}: choose a DATA_DIR it can reach (for example under /var/lib or \
                 /tmp), or run the server as a normal user",
                ancestor.display()
            );
        }
    }
    Ok(())
}

/// A URL for database `database` as the superuser of the cluster in `root`, over its socket.
fn socket_url(root: &Path, database: &str) -> String {
    format!(
        "postgres:///{database}?host={}&user=postgres",
        percent_encode(&root.to_string_lossy())
    )
}

/// Longest unix socket path the kernel accepts, less the terminating NUL.
const MAX_SOCKET_PATH: usize = 107;

impl Cluster {
    /// Starts the cluster in `options.root`, creating it on first use. Returns the cluster and
    /// whether it was created now.
    pub fn start(binaries: PgBinaries, options: &ClusterOptions) -> anyhow::Result<(Self, bool)> {
        let owner = cluster_owner()?;
        fs::create_dir_all(&options.root)
            .with_context(|| format!("cannot create {}", options.root.display()))?;
        let root = options
            .root
            .canonicalize()
            .with_context(|| format!("cannot resolve {}", options.root.display()))?;
        let socket = root.join(".s.PGSQL.5432");
        if socket.as_os_str().len() > MAX_SOCKET_PATH {
            bail!(
                "the data directory path {} is too long for PostgreSQL's unix socket; choose a \
                 shorter DATA_DIR",
                root.display()
            );
        }
        fs::set_permissions(&root, fs::Permissions::from_mode(0o700))?;
        if let Some((uid, gid)) = owner {
            check_reachable(&root, uid, gid)?;
            chown(&root, Some(uid), Some(gid))
                .with_context(|| format!("cannot hand {} to the postgres user", root.display()))?;
        }
        let lock_file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(root.join("server.lock"))?;
        let lock = Flock::lock(lock_file, FlockArg::LockExclusiveNonblock).map_err(|_| {
            anyhow::anyhow!(
                "another server process is using the cluster in {}",
                root.display()
            )
        })?;

        let mut cluster = Self {
            binaries,
            root,
            owner,
            running: false,
            _lock: lock,
        };
        let created = !cluster.pgdata().join("PG_VERSION").exists();
        if created {
            match &options.standby_of {
                Some(primary) => cluster.copy_from(primary)?,
                None => cluster.init()?,
            }
        }
        cluster.write_server_config(options)?;
        cluster.clear_stale_lock()?;
        if !cluster.is_running()? {
            cluster.launch()?;
        }
        cluster.running = true;
        Ok((cluster, created))
    }

    /// The directory of the cluster.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The PostgreSQL data directory.
    pub fn pgdata(&self) -> PathBuf {
        self.root.join("data")
    }

    /// A URL for database `database` as the cluster's superuser, over the unix socket.
    pub fn url(&self, database: &str) -> String {
        socket_url(&self.root, database)
    }

    /// Where the cluster meant for `root` lives: `root` itself, unless this process is root
    /// and the `postgres` user, which then runs the cluster, cannot reach it (a checkout in
    /// `/root`, say); then a directory named after `root` under `/var/lib/justice-counts`,
    /// which it can. The same `root` always gives the same place.
    pub fn placed(root: &Path) -> anyhow::Result<PathBuf> {
        Self::placed_in(root, Path::new("/var/lib/justice-counts"))
    }

    /// [`Cluster::placed`], with the fallback directories under `base`.
    pub fn placed_in(root: &Path, base: &Path) -> anyhow::Result<PathBuf> {
        let Some((uid, gid)) = cluster_owner()? else {
            return Ok(root.to_owned());
        };
        fs::create_dir_all(root).with_context(|| format!("cannot create {}", root.display()))?;
        let canonical = root
            .canonicalize()
            .with_context(|| format!("cannot resolve {}", root.display()))?;
        // A cluster that is there already stays there (the start then says what to do), so
        // that a change of permissions never swaps a database for an empty one.
        if check_reachable(&canonical, uid, gid).is_ok() || root.join("data/PG_VERSION").exists() {
            return Ok(root.to_owned());
        }
        // FNV-1a of the path: stable across builds, unlike the standard library's hasher.
        let text = canonical.to_string_lossy();
        let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
        });
        let readable: String = text
            .chars()
            .rev()
            .take(32)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        if !base.exists() {
            fs::create_dir_all(base)
                .with_context(|| format!("cannot create {}", base.display()))?;
            fs::set_permissions(base, fs::Permissions::from_mode(0o755))?;
        }
        let placed = base.join(format!("{}-{hash:016x}", readable.trim_matches('-')));
        check_reachable(&placed, uid, gid)?;
        tracing::warn!(
            data_dir = %root.display(),
            cluster = %placed.display(),
            "the postgres user cannot reach the data directory; the private cluster lives elsewhere"
        );
        Ok(placed)
    }

    /// The URL of database `database` of the cluster in `root` when another process (a
    /// running server) holds that cluster and it is up: commands then use it through its
    /// socket instead of starting it. None when the cluster is free or not running.
    pub fn held_elsewhere(root: &Path, database: &str) -> Option<String> {
        let root = root.canonicalize().ok()?;
        let lock_file = OpenOptions::new()
            .write(true)
            .open(root.join("server.lock"))
            .ok()?;
        if Flock::lock(lock_file, FlockArg::LockExclusiveNonblock).is_ok() {
            return None;
        }
        root.join(".s.PGSQL.5432")
            .exists()
            .then(|| socket_url(&root, database))
    }

    /// Where `program` is: beside the server programs, or beside the file they link to (a
    /// directory of links may hold only `initdb`, `pg_ctl` and `postgres`).
    fn program(&self, program: &str) -> PathBuf {
        let beside = self.binaries.dir().join(program);
        if is_executable(&beside) {
            return beside;
        }
        fs::canonicalize(self.binaries.dir().join("postgres"))
            .ok()
            .and_then(|real| real.parent().map(|dir| dir.join(program)))
            .filter(|path| is_executable(path))
            .unwrap_or(beside)
    }

    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(self.program(program));
        command.current_dir(&self.root).stdin(Stdio::null());
        if let Some((uid, gid)) = self.owner {
            command.uid(uid.as_raw()).gid(gid.as_raw());
        }
        command
    }

    fn run(&self, program: &str, args: &[&str]) -> anyhow::Result<Output> {
        let output = self
            .command(program)
            .args(args)
            .output()
            .with_context(|| format!("cannot run {program}"))?;
        Ok(output)
    }

    fn run_checked(&self, program: &str, args: &[&str]) -> anyhow::Result<()> {
        let output = self.run(program, args)?;
        if !output.status.success() {
            bail!(
                "{program} failed: {}{}",
                String::from_utf8_lossy(&output.stderr).trim(),
                self.log_tail()
            );
        }
        Ok(())
    }

    fn log_tail(&self) -> String {
        let log = fs::read_to_string(self.root.join("postgres.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(5).collect();
        if tail.is_empty() {
            String::new()
        } else {
            let lines: Vec<&str> = tail.into_iter().rev().collect();
            format!(
                "\nlast lines of {}:\n{}",
                self.root.join("postgres.log").display(),
                lines.join("\n")
            )
        }
    }

    fn init(&self) -> anyhow::Result<()> {
        let pgdata = self.pgdata();
        // A directory without PG_VERSION is the remains of an interrupted initdb.
        if pgdata.exists() {
            fs::remove_dir_all(&pgdata)?;
        }
        let pgdata_arg = pgdata.to_string_lossy().into_owned();
        self.run_checked(
            "initdb",
            &[
                "--pgdata",
                &pgdata_arg,
                "--username=postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-instructions",
            ],
        )?;
        let mut conf = OpenOptions::new()
            .append(true)
            .open(pgdata.join("postgresql.conf"))?;
        writeln!(conf, "\ninclude_if_exists = 'server.conf'")?;
        Ok(())
    }

    /// Creates the data directory as a streaming replica of the cluster in `primary`, through
    /// its unix socket.
    fn copy_from(&self, primary: &Path) -> anyhow::Result<()> {
        let pgdata = self.pgdata();
        if pgdata.exists() {
            fs::remove_dir_all(&pgdata)?;
        }
        let pgdata_arg = pgdata.to_string_lossy().into_owned();
        let host = primary
            .canonicalize()
            .with_context(|| format!("cannot resolve {}", primary.display()))?
            .to_string_lossy()
            .into_owned();
        self.run_checked(
            "pg_basebackup",
            &[
                "--pgdata",
                &pgdata_arg,
                "--host",
                &host,
                "--username=postgres",
                "--wal-method=stream",
                "--write-recovery-conf",
                "--checkpoint=fast",
                "--no-password",
            ],
        )
    }

    /// Settings rewritten at every start, so that a moved directory keeps working.
    fn write_server_config(&self, options: &ClusterOptions) -> anyhow::Result<()> {
        let durable = options.durable;
        let socket_dir = self.root.to_string_lossy().replace('\'', "''");
        let mut text = format!(
            "# Written by the server at each start; edits are lost.\n\
             listen_addresses = ''\n\
             unix_socket_directories = '{socket_dir}'\n\
             unix_socket_permissions = 0700\n\
             max_connections = 200\n"
        );
        if !durable {
            text.push_str("fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n");
        }
        for (name, value) in &options.settings {
            text.push_str(&format!("{name} = '{}'\n", value.replace('\'', "''")));
        }
        let path = self.pgdata().join("server.conf");
        fs::write(&path, text)?;
        if let Some((uid, gid)) = self.owner {
            chown(&path, Some(uid), Some(gid))?;
        }
        Ok(())
    }

    /// Removes the lock files of a server that is gone (after a crash or a reboot), which
    /// would otherwise stop a new server from starting.
    fn clear_stale_lock(&self) -> anyhow::Result<()> {
        let pid_file = self.pgdata().join("postmaster.pid");
        let Ok(text) = fs::read_to_string(&pid_file) else {
            return Ok(());
        };
        let pid = text
            .lines()
            .next()
            .and_then(|line| line.trim().parse::<i32>().ok());
        if pid.is_some_and(|pid| self.is_our_postmaster(pid)) {
            return Ok(());
        }
        tracing::warn!(pid_file = %pid_file.display(), "removing a stale postmaster.pid");
        fs::remove_file(&pid_file)?;
        for stale in [".s.PGSQL.5432", ".s.PGSQL.5432.lock"] {
            let path = self.root.join(stale);
            if path.exists() {
                fs::remove_file(path)?;
            }
        }
        Ok(())
    }

    /// Whether `pid` is a live postmaster serving this data directory (its working directory).
    fn is_our_postmaster(&self, pid: i32) -> bool {
        let cwd = fs::read_link(format!("/proc/{pid}/cwd"));
        cwd.is_ok_and(|cwd| cwd == self.pgdata())
    }

    fn is_running(&self) -> anyhow::Result<bool> {
        let pgdata = self.pgdata().to_string_lossy().into_owned();
        Ok(self
            .run("pg_ctl", &["status", "--pgdata", &pgdata])?
            .status
            .success())
    }

    fn launch(&self) -> anyhow::Result<()> {
        let pgdata = self.pgdata().to_string_lossy().into_owned();
        let log = self
            .root
            .join("postgres.log")
            .to_string_lossy()
            .into_owned();
        let output = self
            .command("pg_ctl")
            .args([
                "start",
                "--wait",
                "--timeout=60",
                "--pgdata",
                &pgdata,
                "--log",
                &log,
            ])
            // A process group of its own: a Ctrl-C meant for this server must not reach
            // PostgreSQL before the server has shut down cleanly.
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .context("cannot run pg_ctl")?;
        if !output.status.success() {
            bail!(
                "PostgreSQL did not start: {}{}",
                String::from_utf8_lossy(&output.stderr).trim(),
                self.log_tail()
            );
        }
        Ok(())
    }

    /// Stops the server (fast shutdown: open transactions are rolled back, data is kept).
    pub fn stop(&mut self) -> anyhow::Result<()> {
        if !self.running {
            return Ok(());
        }
        let pgdata = self.pgdata().to_string_lossy().into_owned();
        self.run_checked(
            "pg_ctl",
            &[
                "stop",
                "--wait",
                "--timeout=60",
                "--mode=fast",
                "--pgdata",
                &pgdata,
            ],
        )?;
        self.running = false;
        Ok(())
    }

    /// Hands the cluster to a watchdog that stops it and deletes its directory once the
    /// process `watched` has exited. For clusters that must outlive every handle in this
    /// process but not the process itself (a test run's shared cluster).
    pub fn stop_and_remove_after_exit_of(mut self, watched: u32) -> anyhow::Result<()> {
        let pg_ctl = self.binaries.dir().join("pg_ctl");
        let script = "while [ -d /proc/$0 ]; do sleep 0.5; done; \
                      \"$1\" stop --mode=immediate --pgdata \"$2\" >/dev/null 2>&1; rm -rf \"$3\"";
        let mut command = Command::new("sh");
        command
            .args(["-c", script])
            .arg(watched.to_string())
            .arg(pg_ctl)
            .arg(self.pgdata())
            .arg(&self.root)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0);
        if let Some((uid, gid)) = self.owner {
            command.uid(uid.as_raw()).gid(gid.as_raw());
        }
        command
            .spawn()
            .context("cannot start the cluster's watchdog")?;
        self.running = false;
        Ok(())
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Err(error) = self.stop() {
            tracing::error!(error = %error, "stopping the private PostgreSQL cluster failed");
        }
    }
}

/// Percent-encodes the characters that would break a URL query value.
fn percent_encode(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"/-_.~".contains(&byte) {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_binaries_name_what_to_install() {
        let search = BinarySearch {
            path: vec![PathBuf::from("/nonexistent")],
            versioned_roots: vec![PathBuf::from("/nonexistent")],
            ..BinarySearch::default()
        };
        let error = PgBinaries::locate(&search)
            .expect_err("nothing to find")
            .to_string();
        assert!(error.contains("apt-get install postgresql"), "{error}");
        assert!(error.contains("DATABASE_URL"), "{error}");
    }

    #[test]
    fn an_explicit_directory_without_programs_is_refused() {
        let search = BinarySearch::system(Some(PathBuf::from("/nonexistent/bin")));
        let error = PgBinaries::locate(&search)
            .expect_err("nothing to find")
            .to_string();
        assert!(error.contains("/nonexistent/bin does not hold"), "{error}");
    }

    #[test]
    fn socket_paths_are_encoded_for_urls() {
        assert_eq!(percent_encode("/tmp/a b&c"), "/tmp/a%20b%26c");
    }
}
