//! Shared test fixtures: the `../shared` folder, scratch data directories, a
//! real mosquitto broker on a free loopback port, and the gatehouse binary.

pub mod tls;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `../shared` (models and photos), or `GATEHOUSE_SHARED`.
pub fn shared_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("GATEHOUSE_SHARED") {
        return PathBuf::from(dir);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared")
}

pub fn models_mirror() -> PathBuf {
    shared_dir().join("models")
}

pub fn faces_dir() -> PathBuf {
    shared_dir().join("faces")
}

/// The ONNX Runtime library set up by scripts/setup.sh.
pub fn ort_dylib() -> PathBuf {
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH") {
        return PathBuf::from(p);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join(".cache/onnxruntime/libonnxruntime.so")
}

/// A temporary directory removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(tag: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!(
            "gatehouse-test-{tag}-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&dir).expect("create scratch dir");
        Scratch(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A real mosquitto broker on a free loopback port, stopped on drop.
pub struct Mosquitto {
    pub port: u16,
    child: Option<Child>,
    dir: Scratch,
}

impl Mosquitto {
    pub fn start() -> Mosquitto {
        Mosquitto::start_on(free_port())
    }

    /// Starts on a given port (to restart a broker where clients expect it).
    pub fn start_on(port: u16) -> Mosquitto {
        let dir = Scratch::new("mosquitto");
        let conf = dir.path().join("mosquitto.conf");
        let mut text =
            // No per-client queue limit: a test subscriber lagging behind a burst of
            // thousands of events under load must not lose messages at the broker
            // (mosquitto keeps 1000 per client by default).
            format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 0\n");
        // mosquitto drops privileges to `mosquitto` when started as root unless told otherwise.
        if unsafe_is_root() {
            text.push_str("user root\n");
        }
        std::fs::write(&conf, text).expect("write mosquitto.conf");
        let child = Command::new(mosquitto_bin())
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mosquitto (apt install mosquitto; scripts/setup.sh does)");
        let broker = Mosquitto {
            port,
            child: Some(child),
            dir,
        };
        broker.wait_ready();
        broker
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("mosquitto did not start on port {}", self.port);
    }

    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        self.stop();
        let _ = &self.dir;
    }
}

fn mosquitto_bin() -> PathBuf {
    for p in ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"] {
        if Path::new(p).exists() {
            return PathBuf::from(p);
        }
    }
    PathBuf::from("mosquitto")
}

fn unsafe_is_root() -> bool {
    std::env::var("USER").map(|u| u == "root").unwrap_or(false)
        || Command::new("id")
            .arg("-u")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
            .unwrap_or(false)
}

/// The gatehouse binary built for these tests.
pub fn gatehouse() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gatehouse"));
    cmd.env("ORT_DYLIB_PATH", ort_dylib());
    cmd.env_remove("GATEHOUSE_CONFIG");
    cmd
}
