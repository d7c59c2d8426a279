//! A `redis-server` of a test's own, for the tests of the Redis backend.
//! Each server listens on a unix socket in its own temporary directory,
//! never a TCP port: a port picked free can be taken by another test's
//! server before this one binds it.
//!
//! Needs `redis-server` (Debian's package; `.ci/run` installs it): without
//! it the tests that use it fail, saying so.

use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `redis-server` of this test's own on a unix socket in its own
/// directory, stopped when dropped.
pub struct Redis {
    child: Option<Child>,
    dir: tempfile::TempDir,
    persistent: bool,
}

impl Redis {
    /// Without persistence, as the tests need nothing on disk.
    pub fn start() -> Redis {
        Redis::launch(false)
    }

    /// With an append-only file synced on every write, so that a restart
    /// keeps what was acknowledged.
    pub fn start_persistent() -> Redis {
        Redis::launch(true)
    }

    fn launch(persistent: bool) -> Redis {
        let mut redis = Redis {
            child: None,
            dir: tempfile::tempdir().expect("tempdir"),
            persistent,
        };
        redis.spawn();
        redis
    }

    fn spawn(&mut self) {
        let mut command = Command::new("redis-server");
        command
            .args(["--port", "0", "--unixsocket"])
            .arg(self.socket())
            .args(["--unixsocketperm", "700", "--save", ""])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if self.persistent {
            command.args(["--appendonly", "yes", "--appendfsync", "always"]);
        } else {
            command.args(["--appendonly", "no"]);
        }
        let child = command.spawn().unwrap_or_else(|e| {
            panic!(
                "cannot start redis-server ({e}): these tests need Debian's redis-server \
                 (apt-get install redis-server; .ci/run installs it)"
            )
        });
        self.child = Some(child);
        // A socket left by a killed server refuses connections until the
        // new one replaces it.
        let deadline = Instant::now() + Duration::from_secs(10);
        while UnixStream::connect(self.socket()).is_err() {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("redis-server exited at start: {status}");
            }
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("redis.sock")
    }

    pub fn url(&self) -> String {
        format!("redis+unix://{}", self.socket().display())
    }

    /// Kills the server at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops (SIGSTOP) or continues (SIGCONT) the server: a Redis that
    /// accepts connections and answers nothing, as a hung server would.
    pub fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("running").id().to_string();
        let status = Command::new("kill").args([signal, &pid]).status().unwrap();
        assert!(status.success(), "kill {signal} {pid}");
    }

    /// Starts it again on the same socket and directory.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

impl Redis {
    /// A backend (one "host") on this server, in namespace `namespace`,
    /// whose claims (in-flight messages, lock leases) last `lease`.
    pub async fn backend(
        &self,
        namespace: &str,
        lease: Duration,
    ) -> std::sync::Arc<corral::ipc::redis::RedisBackend> {
        use corral::ipc::redis::{RedisBackend, RedisConfig};
        RedisBackend::connect(
            RedisConfig::new(self.url())
                .namespace(namespace)
                .lease(lease),
        )
        .await
        .expect("connect to the test's redis")
    }
}
