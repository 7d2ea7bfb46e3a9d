//! Private instances of the servers the system depends on, for tests that stop and restart them:
//! a Kafka-protocol broker (tansu), a PostgreSQL cluster and a Redis server, each on a free port
//! with its files in a temporary directory. The machine's shared PostgreSQL and Redis are never
//! touched; each instance is stopped when dropped.

use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::process::{Child, Command};

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Waits until something listens on `port`: a minute at most, generous for a loaded machine.
pub async fn wait_for_port(port: u16, what: &str) {
    for _ in 0..2400 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{what} did not start listening on {port}");
}

/// Runs `program` to completion, as `user` when this process is root (PostgreSQL refuses to run
/// as root); panics with its output when it fails.
async fn run(program: &Path, args: &[&str], user: Option<&str>) {
    let mut command = match user {
        Some(user) => {
            let mut command = Command::new("runuser");
            command.args(["-u", user, "--"]).arg(program);
            command
        }
        None => Command::new(program),
    };
    let output = command
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap_or_else(|e| panic!("{} runs: {e}", program.display()));
    assert!(
        output.status.success(),
        "{} {args:?} failed:\n{}{}",
        program.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn running_as_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// Where PostgreSQL's server programs live: `DONTOUCH_TEST_PG_BIN`, else `pg_config --bindir`,
/// else the newest Debian install.
fn postgres_bin() -> PathBuf {
    if let Ok(dir) = std::env::var("DONTOUCH_TEST_PG_BIN") {
        return PathBuf::from(dir);
    }
    if let Ok(output) = std::process::Command::new("pg_config")
        .arg("--bindir")
        .output()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
        if dir.join("pg_ctl").exists() {
            return dir;
        }
    }
    let mut installed: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| entries.flatten().map(|e| e.path().join("bin")).collect())
        .unwrap_or_default();
    installed.sort();
    installed
        .pop()
        .filter(|dir| dir.join("pg_ctl").exists())
        .expect("PostgreSQL's server programs (initdb, pg_ctl) are installed")
}

/// A PostgreSQL cluster of its own: trust authentication for `postgres` on 127.0.0.1, no fsync.
pub struct PrivatePostgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    user: Option<&'static str>,
    pub port: u16,
}

impl PrivatePostgres {
    pub async fn start() -> PrivatePostgres {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let user = running_as_root().then_some("postgres");
        if let Some(user) = user {
            run(
                Path::new("chown"),
                &[user, &dir.path().display().to_string()],
                None,
            )
            .await;
        }
        let postgres = PrivatePostgres {
            bin: postgres_bin(),
            port: free_port(),
            user,
            dir,
        };
        let data = postgres.data().display().to_string();
        run(
            &postgres.bin.join("initdb"),
            &["-D", &data, "-A", "trust", "-U", "postgres", "--no-sync"],
            user,
        )
        .await;
        postgres.start_again().await;
        postgres
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The URL of `database` on this server.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Starts the server (again) on its port, with the data it had.
    pub async fn start_again(&self) {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} -c fsync=off \
             -c synchronous_commit=off -c full_page_writes=off",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("postgres.log").display().to_string();
        let data = self.data().display().to_string();
        run(
            &self.bin.join("pg_ctl"),
            &["start", "-D", &data, "-l", &log, "-w", "-o", &options],
            self.user,
        )
        .await;
    }

    /// Stops the server the way an operator does (`pg_ctl stop -m fast`): open sessions are
    /// ended and new connections refused until [`start_again`](Self::start_again).
    pub async fn stop(&self) {
        let data = self.data().display().to_string();
        run(
            &self.bin.join("pg_ctl"),
            &["stop", "-D", &data, "-m", "fast", "-w"],
            self.user,
        )
        .await;
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let mut command = match self.user {
            Some(user) => {
                let mut command = std::process::Command::new("runuser");
                command
                    .args(["-u", user, "--"])
                    .arg(self.bin.join("pg_ctl"));
                command
            }
            None => std::process::Command::new(self.bin.join("pg_ctl")),
        };
        // Already stopped is fine.
        let _ = command
            .args(["stop", "-D"])
            .arg(self.data())
            .args(["-m", "immediate", "-w"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// A Redis server of its own, keeping nothing on disk.
pub struct PrivateRedis {
    dir: tempfile::TempDir,
    child: Option<Child>,
    pub port: u16,
}

impl PrivateRedis {
    pub async fn start() -> PrivateRedis {
        let mut redis = PrivateRedis {
            dir: tempfile::tempdir().expect("a temporary directory"),
            child: None,
            port: free_port(),
        };
        redis.start_again().await;
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts the server (again, empty) on its port.
    pub async fn start_again(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server is installed");
        self.child = Some(child);
        wait_for_port(self.port, "redis-server").await;
    }

    /// Kills the server: every connection drops and new ones are refused until
    /// [`start_again`](Self::start_again).
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    /// Freezes the server (SIGSTOP): connections stay open but nothing is answered, as when a
    /// server hangs or the network to it drops without a word.
    pub async fn freeze(&self) {
        self.signal("-STOP").await;
    }

    pub async fn thaw(&self) {
        self.signal("-CONT").await;
    }

    async fn signal(&self, signal: &str) {
        let pid = self
            .child
            .as_ref()
            .and_then(Child::id)
            .expect("the server is running")
            .to_string();
        run(Path::new("kill"), &[signal, &pid], None).await;
    }
}

/// A tansu broker keeping everything in memory, killed when dropped.
pub struct Broker {
    child: Child,
    pub port: u16,
}

impl Broker {
    pub async fn start() -> Broker {
        let port = free_port();
        Broker {
            child: Broker::spawn(port).await,
            port,
        }
    }

    async fn spawn(port: u16) -> Child {
        let url = format!("tcp://127.0.0.1:{port}");
        let child = Command::new("tansu")
            .args(["broker", "--storage-engine", "memory://tansu/"])
            .args(["--listener-url", &url, "--advertised-listener-url", &url])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("tansu is installed (bash .ci/run installs it)");
        wait_for_port(port, "tansu").await;
        child
    }

    pub fn url(&self) -> String {
        format!("kafka://127.0.0.1:{}", self.port)
    }

    /// Freezes the broker process (SIGSTOP): connections stay open but nothing is answered, as
    /// when a broker hangs or the network to it drops.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.id().expect("the broker is running").to_string();
        let status = std::process::Command::new("kill")
            .args([signal, &pid])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    /// Kills the broker (SIGKILL). It kept everything in memory: topics, events and the
    /// consumer group's positions are gone.
    pub async fn kill(&mut self) {
        let _ = self.child.kill().await;
    }

    /// Starts an empty broker on the same port.
    pub async fn start_again(&mut self) {
        self.child = Broker::spawn(self.port).await;
    }
}
