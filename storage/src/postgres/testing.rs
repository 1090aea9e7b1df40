//! A throwaway Postgres cluster for tests: `initdb` into a temporary directory, `pg_ctl start`
//! on a free port, a `ductstream` database; stopped and removed on drop.
//!
//! Needs the PostgreSQL server binaries (`initdb`, `pg_ctl`, `createdb`) on `PATH`; without
//! them [`TestPostgres::start`] fails with a message saying so (tests must not pass silently).
//! As root, the cluster runs as the `postgres` user (Postgres refuses to run as root).
//! `fsync` is off unless asked for: the cluster is for tests only.

use std::io;
use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

static CLUSTERS: AtomicU32 = AtomicU32::new(0);

/// The database [`TestPostgres::url`] points at.
pub const DATABASE: &str = "ductstream";

/// A running throwaway Postgres cluster.
pub struct TestPostgres {
    root: PathBuf,
    port: u16,
    pg_ctl: PathBuf,
    as_postgres_user: bool,
    fsync: bool,
    tls: bool,
    running: bool,
}

impl TestPostgres {
    /// Creates, starts and prepares a cluster with `fsync=off`. Fails with a clear message when
    /// the binaries are missing or a step fails (with Postgres' own output).
    pub fn start() -> io::Result<TestPostgres> {
        Self::start_with_fsync(false)
    }

    /// [`TestPostgres::start`], with `fsync` on for measurements that should reflect a durable
    /// server.
    pub fn start_with_fsync(fsync: bool) -> io::Result<TestPostgres> {
        Self::start_cluster(fsync, false)
    }

    /// [`TestPostgres::start`], accepting TCP connections over TLS only: a certificate for
    /// `localhost` and `127.0.0.1` signed by a throwaway CA ([`TestPostgres::tls_root_cert`]),
    /// made with the `openssl` command; plain TCP connections are rejected.
    pub fn start_with_tls() -> io::Result<TestPostgres> {
        Self::start_cluster(false, true)
    }

    fn start_cluster(fsync: bool, tls: bool) -> io::Result<TestPostgres> {
        let initdb = find_on_path("initdb").ok_or_else(|| {
            io::Error::other(
                "initdb not found on PATH: the Postgres engine tests need the PostgreSQL server binaries \
                 (Debian: apt-get install postgresql, then put /usr/lib/postgresql/<version>/bin on PATH)",
            )
        })?;
        let pg_ctl = find_on_path("pg_ctl")
            .or_else(|| sibling(&initdb, "pg_ctl"))
            .ok_or_else(|| io::Error::other("pg_ctl not found on PATH or next to initdb"))?;
        let createdb = find_on_path("createdb")
            .or_else(|| sibling(&initdb, "createdb"))
            .ok_or_else(|| io::Error::other("createdb not found on PATH or next to initdb"))?;

        let root = std::env::temp_dir().join(format!(
            "ductstream-pg-{}-{}",
            std::process::id(),
            CLUSTERS.fetch_add(1, Ordering::Relaxed)
        ));
        if root.exists() {
            std::fs::remove_dir_all(&root)?;
        }
        std::fs::create_dir_all(root.join("socket"))?;
        let as_postgres_user = running_as_root();
        let mut cluster = TestPostgres { root, port: free_port()?, pg_ctl, as_postgres_user, fsync, tls, running: false };
        if tls {
            cluster.make_certificates()?;
        }
        if as_postgres_user {
            cluster.run(Path::new("chown"), &["-R", "postgres:", &cluster.root_str()], false)?;
        }
        let data = cluster.data_dir();
        cluster.run(&initdb, &["-D", &data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-locale", "--no-sync"], true)?;
        if tls {
            std::fs::write(
                cluster.root.join("data").join("pg_hba.conf"),
                "local all all trust\nlocal replication all trust\n\
                 hostssl all all 127.0.0.1/32 trust\nhostssl replication all 127.0.0.1/32 trust\n\
                 hostnossl all all 0.0.0.0/0 reject\nhostnossl replication all 0.0.0.0/0 reject\n",
            )?;
        }
        cluster.pg_ctl(&["start", "-w", "-t", "60", "-l", &cluster.log_file(), "-o", &cluster.server_options()])?;
        cluster.running = true;
        let port = cluster.port.to_string();
        cluster.run(&createdb, &["-h", "127.0.0.1", "-p", &port, "-U", "postgres", DATABASE], true)?;
        Ok(cluster)
    }

    /// `postgres://postgres@127.0.0.1:<port>/ductstream`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{DATABASE}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Restarts the server (`pg_ctl restart -m fast`): every open connection is cut.
    pub fn restart(&self) -> io::Result<()> {
        self.pg_ctl(&["restart", "-m", "fast", "-w", "-t", "60", "-l", &self.log_file(), "-o", &self.server_options()])
    }

    /// Stops the server (`pg_ctl stop -m fast`), as when the database goes away.
    pub fn stop(&self) -> io::Result<()> {
        self.pg_ctl(&["stop", "-m", "fast", "-w", "-t", "60"])
    }

    /// Starts the server again after [`TestPostgres::stop`].
    pub fn start_again(&self) -> io::Result<()> {
        self.pg_ctl(&["start", "-w", "-t", "60", "-l", &self.log_file(), "-o", &self.server_options()])
    }

    /// The CA certificate that signed the server's, with [`TestPostgres::start_with_tls`].
    pub fn tls_root_cert(&self) -> Option<PathBuf> {
        self.tls.then(|| self.root.join("tls").join("ca.crt"))
    }

    /// A throwaway CA and a server certificate it signed, with the `openssl` command.
    fn make_certificates(&self) -> io::Result<()> {
        let dir = self.root.join("tls");
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("san.ext"), "subjectAltName=DNS:localhost,IP:127.0.0.1\n")?;
        let openssl = Path::new("openssl");
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
        let steps: [Vec<&str>; 3] = [
            [&["req", "-x509"][..], &ec, &["-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=ductstream test CA"]].concat(),
            [&["req"][..], &ec, &["-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost"]].concat(),
            vec![
                "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-out",
                "server.crt", "-days", "2", "-extfile", "san.ext",
            ],
        ];
        for args in steps {
            let output = Command::new(openssl).args(&args).current_dir(&dir).output().map_err(|e| {
                io::Error::other(format!("cannot run openssl (needed for TLS tests): {e}"))
            })?;
            if !output.status.success() {
                return Err(io::Error::other(format!("openssl {} failed: {}", args.join(" "), String::from_utf8_lossy(&output.stderr))));
            }
        }
        // Postgres refuses a key others can read.
        std::fs::set_permissions(dir.join("server.key"), std::os::unix::fs::PermissionsExt::from_mode(0o600))
    }

    /// The server log so far, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_file()).unwrap_or_default()
    }

    fn server_options(&self) -> String {
        let mut options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync={} -c wal_level=logical",
            self.port,
            self.root.join("socket").display(),
            if self.fsync { "on" } else { "off" }
        );
        if self.tls {
            let dir = self.root.join("tls");
            options.push_str(&format!(
                " -c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
                dir.join("server.crt").display(),
                dir.join("server.key").display()
            ));
        }
        options
    }

    fn root_str(&self) -> String {
        self.root.display().to_string()
    }

    fn data_dir(&self) -> String {
        self.root.join("data").display().to_string()
    }

    fn log_file(&self) -> String {
        self.root.join("server.log").display().to_string()
    }

    fn pg_ctl(&self, args: &[&str]) -> io::Result<()> {
        let data = self.data_dir();
        let mut all = vec!["-D", data.as_str()];
        all.extend_from_slice(args);
        self.run(&self.pg_ctl, &all, true).map_err(|e| io::Error::other(format!("{e}\nserver log:\n{}", self.log())))
    }

    /// Runs `program`, as the postgres user when `as_postgres` and we are root.
    fn run(&self, program: &Path, args: &[&str], as_postgres: bool) -> io::Result<()> {
        let mut command = if as_postgres && self.as_postgres_user {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        };
        command.args(args).current_dir(&self.root);
        let output = command
            .output()
            .map_err(|e| io::Error::other(format!("cannot run {}: {e}", program.display())))?;
        if output.status.success() {
            return Ok(());
        }
        Err(io::Error::other(format!(
            "{} {} failed ({}):\n{}{}",
            program.display(),
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )))
    }
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        if self.running
            && let Err(e) = self.pg_ctl(&["stop", "-m", "immediate", "-w"])
        {
            eprintln!("stopping the test postgres failed: {e}");
        }
        if let Err(e) = std::fs::remove_dir_all(&self.root) {
            eprintln!("removing {} failed: {e}", self.root.display());
        }
    }
}

fn find_on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(program)).find(|candidate| {
        candidate.metadata().is_ok_and(|m| m.is_file() && m.mode() & 0o111 != 0)
    })
}

/// `name` in the directory `program` really lives in (following symlinks).
fn sibling(program: &Path, name: &str) -> Option<PathBuf> {
    let candidate = program.canonicalize().ok()?.parent()?.join(name);
    candidate.is_file().then_some(candidate)
}

fn running_as_root() -> bool {
    // /proc/self belongs to the process' effective user.
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

fn free_port() -> io::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}
