//! Fixtures for the console tests: the real daemon (`gatehouse run`) with a
//! console on a free port and simulated gates, a plain HTTP client with a
//! cookie jar, and a small WebDriver client driving Debian's headless
//! Chromium through chromedriver (raw W3C WebDriver over HTTP with ureq).

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};

use crate::common::{faces_dir, free_port, gatehouse, models_mirror, Scratch};

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
pub const MANAGER: &str = "wang";
pub const MANAGER_PASSWORD: &str = "qingbo-gate-2025";

/// Where screenshots go (CI keeps them as artifacts).
pub fn screenshot_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/console-screenshots");
    std::fs::create_dir_all(&dir).expect("create target/console-screenshots");
    dir
}

/// The demo config with the data in `dir`, the console (and the LPR
/// endpoint) on free ports; `extra` is appended to `[console]`; with
/// `faces`, the face models from `../shared/models`.
pub fn write_config(dir: &Path, console_port: u16, extra: &str, faces: bool) -> PathBuf {
    let demo = include_str!("../../config/demo.toml");
    let text = demo
        .replace(
            "data_dir = \"gatehouse-data\"",
            &format!("data_dir = {:?}", dir.display().to_string()),
        )
        .replace(
            "listen = \"127.0.0.1:8088\"",
            &format!("listen = \"127.0.0.1:{console_port}\"\n{extra}"),
        )
        .replace(
            "listen = \"127.0.0.1:8089\"",
            &format!("listen = \"127.0.0.1:{}\"", free_port()),
        )
        .replace(
            "../shared/faces/video/short_hamilton_clip.mp4",
            &faces_dir()
                .join("video/short_hamilton_clip.mp4")
                .display()
                .to_string(),
        );
    let text = if faces {
        // The test models, used in place (they are checked by sha256 when loaded).
        text.replace(
            "[models]\n",
            &format!(
                "[models]\ndir = {:?}\n",
                models_mirror().display().to_string()
            ),
        )
    } else {
        // No face models: face recognition stays out of service (cheap), the rest runs.
        text
    };
    assert!(
        text.contains(&format!("127.0.0.1:{console_port}")),
        "demo config has no [console] listen"
    );
    // The device page and the camera-frame check read the camera live, however
    // long the test has run: the clip must loop rather than end.
    assert!(
        text.contains("loop_file = true"),
        "demo config's camera does not loop"
    );
    let path = dir.join("gatehouse.toml");
    std::fs::write(&path, text).expect("write config");
    path
}

/// `gatehouse run` in a scratch directory, stopped with SIGTERM on drop.
pub struct Gateway {
    pub dir: Scratch,
    pub config: PathBuf,
    pub base: String,
    pub log: PathBuf,
    child: Option<Child>,
}

impl Gateway {
    pub fn start(tag: &str) -> Gateway {
        Gateway::start_with(tag, "", "http", false)
    }

    /// With the face models and the demo's camera (a video clip).
    pub fn start_with_faces(tag: &str) -> Gateway {
        Gateway::start_with(tag, "", "http", true)
    }

    pub fn start_with(tag: &str, extra_console: &str, scheme: &str, faces: bool) -> Gateway {
        let dir = Scratch::new(tag);
        let port = free_port();
        let config = write_config(dir.path(), port, extra_console, faces);
        let log = dir.path().join("daemon.log");
        let child = gatehouse()
            .arg("--config")
            .arg(&config)
            .arg("run")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("create daemon.log"))
            .spawn()
            .expect("start gatehouse run");
        let gw = Gateway {
            base: format!("{scheme}://127.0.0.1:{port}"),
            config,
            log,
            dir,
            child: Some(child),
        };
        gw.wait_log("console: ", Duration::from_secs(30));
        gw
    }

    pub fn log_text(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// Waits until the daemon's log contains `needle`; returns the log.
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let text = self.log_text();
            if text.contains(needle) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "daemon log never showed {needle:?}:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The one-time setup link the daemon logged.
    pub fn setup_link(&self) -> String {
        let log = self.wait_log("/setup?token=", Duration::from_secs(30));
        let start = log.find("/setup?token=").expect("setup link");
        let rest = &log[start..];
        let end = rest
            .char_indices()
            .skip("/setup?token=".len())
            .find(|(_, c)| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
            .map(|(i, _)| i)
            .unwrap_or(rest.len());
        format!("{}{}", self.base, &rest[..end])
    }

    /// A `gatehouse` command against this daemon (simulate, log, …).
    pub fn cli(&self, args: &[&str]) -> Output {
        let out = gatehouse()
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .output()
            .expect("run gatehouse");
        println!(
            "$ gatehouse {}\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: signalling our own child process.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A plain HTTP response.
pub struct Reply {
    pub status: u16,
    pub location: Option<String>,
    pub body: String,
}

/// A cookie-keeping HTTP client that does not follow redirects.
pub struct Http {
    agent: ureq::Agent,
    pub base: String,
    pub jar: HashMap<String, String>,
}

impl Http {
    pub fn new(base: &str) -> Http {
        Http {
            agent: ureq::AgentBuilder::new()
                .redirects(0)
                .timeout(Duration::from_secs(30))
                .build(),
            base: base.to_string(),
            jar: HashMap::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.jar
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn finish(&mut self, r: Result<ureq::Response, ureq::Error>) -> Reply {
        let resp = match r {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("HTTP request failed: {e}"),
        };
        let cookies: Vec<(String, String)> = resp
            .all("set-cookie")
            .iter()
            .filter_map(|c| c.split(';').next())
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        for (k, v) in &cookies {
            if v.is_empty() {
                self.jar.remove(k);
            } else {
                self.jar.insert(k.clone(), v.clone());
            }
        }
        Reply {
            status: resp.status(),
            location: resp.header("location").map(str::to_string),
            body: resp.into_string().unwrap_or_default(),
        }
    }

    pub fn get(&mut self, path: &str) -> Reply {
        let r = self
            .agent
            .get(&format!("{}{path}", self.base))
            .set("cookie", &self.cookie_header())
            .call();
        self.finish(r)
    }

    /// A GET whose body is binary: (status, content type, bytes).
    pub fn get_bytes(&mut self, path: &str) -> (u16, Option<String>, Vec<u8>) {
        let resp = match self
            .agent
            .get(&format!("{}{path}", self.base))
            .set("cookie", &self.cookie_header())
            .call()
        {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("HTTP request failed: {e}"),
        };
        let status = resp.status();
        let kind = resp.header("content-type").map(str::to_string);
        let mut body = Vec::new();
        std::io::Read::read_to_end(&mut resp.into_reader(), &mut body).expect("read body");
        (status, kind, body)
    }

    pub fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Reply {
        let r = self
            .agent
            .post(&format!("{}{path}", self.base))
            .set("cookie", &self.cookie_header())
            .send_form(form);
        self.finish(r)
    }

    /// A multipart form with text `fields` and one file.
    pub fn post_multipart(
        &mut self,
        path: &str,
        fields: &[(&str, &str)],
        file: (&str, &str, &[u8]),
    ) -> Reply {
        let boundary = "----gatehouse-test-boundary-7MA4YWxkTrZu0gW";
        let mut body = Vec::new();
        for (name, value) in fields {
            body.extend_from_slice(
                format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
                    .as_bytes(),
            );
        }
        let (field, file_name, bytes) = file;
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{file_name}\"\r\nContent-Type: text/csv\r\n\r\n")
                .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let r = self
            .agent
            .post(&format!("{}{path}", self.base))
            .set("cookie", &self.cookie_header())
            .set(
                "content-type",
                &format!("multipart/form-data; boundary={boundary}"),
            )
            .send_bytes(&body);
        self.finish(r)
    }

    /// The CSRF token of the signed-in session (from any page's forms).
    pub fn csrf(&mut self) -> String {
        let page = self.get("/account/password");
        hidden(&page.body, "_csrf").expect("a signed-in page carries the CSRF token")
    }

    /// Creates the first manager through the setup link and stays signed in.
    pub fn setup(&mut self, link: &str) -> Reply {
        let path = link
            .strip_prefix(&self.base)
            .expect("setup link on this base")
            .to_string();
        let page = self.get(&path);
        assert_eq!(page.status, 200, "{}", page.body);
        let pre = hidden(&page.body, "_csrf").expect("setup form token");
        let token = hidden(&page.body, "token").expect("setup token field");
        self.post(
            "/setup",
            &[
                ("_csrf", &pre),
                ("token", &token),
                ("name", MANAGER),
                ("password", MANAGER_PASSWORD),
                ("confirm", MANAGER_PASSWORD),
            ],
        )
    }

    /// Signs in through the login form (with its pre-session token).
    pub fn login(&mut self, name: &str, password: &str) -> Reply {
        let page = self.get("/login");
        let token = hidden(&page.body, "_csrf").expect("login form token");
        self.post(
            "/login",
            &[
                ("_csrf", &token),
                ("name", name),
                ("password", password),
                ("next", ""),
            ],
        )
    }
}

/// The value of the first hidden input `name` in a page.
pub fn hidden(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker)? + marker.len();
    let end = html[start..].find('"')? + start;
    Some(html[start..end].to_string())
}

/// chromedriver on a free port, killed on drop.
pub struct Driver {
    child: Child,
    pub url: String,
}

impl Driver {
    pub fn start() -> Driver {
        for bin in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(bin).exists(),
                "{bin} is missing: apt-get install -y --no-install-recommends chromium chromium-driver (scripts/setup.sh does)"
            );
        }
        let port = free_port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = ureq::get(&format!("{url}/status")).call() {
                let v: Value = serde_json::from_str(&r.into_string().unwrap_or_default())
                    .unwrap_or(Value::Null);
                if v["value"]["ready"] == json!(true) {
                    break;
                }
            }
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        Driver { child, url }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A browser session (headless Chromium with a fresh profile).
pub struct Browser {
    session: String,
    agent: ureq::Agent,
    _profile: Scratch,
}

#[derive(Clone, Debug)]
pub struct Element(String);

impl Browser {
    pub fn start(driver: &Driver) -> Browser {
        let profile = Scratch::new("chromium-profile");
        let args = vec![
            "--headless".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-dev-shm-usage".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--window-size=1280,900".into(),
            "--lang=zh-CN".into(),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let caps = json!({
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "pageLoadStrategy": "normal",
                    "timeouts": { "pageLoad": 90_000, "script": 30_000, "implicit": 0 },
                    "goog:chromeOptions": { "binary": CHROMIUM, "args": args }
                }
            }
        });
        let agent = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(120))
            .build();
        let reply = agent
            .post(&format!("{}/session", driver.url))
            .set("content-type", "application/json")
            .send_string(&caps.to_string())
            .unwrap_or_else(|e| panic!("cannot start Chromium: {}", describe(e)));
        let r: Value = serde_json::from_str(&reply.into_string().expect("session reply"))
            .expect("session json");
        let id = r["value"]["sessionId"]
            .as_str()
            .expect("session id")
            .to_string();
        Browser {
            session: format!("{}/session/{id}", driver.url),
            agent,
            _profile: profile,
        }
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let req = self
            .agent
            .request(method, &format!("{}{path}", self.session));
        let r = match body {
            Some(b) => req
                .set("content-type", "application/json")
                .send_string(&b.to_string()),
            None => req.call(),
        };
        match r {
            Ok(resp) => {
                let text = resp.into_string().map_err(|e| e.to_string())?;
                let v: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
                Ok(v["value"].clone())
            }
            Err(e) => Err(describe(e)),
        }
    }

    fn must(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.call(method, path, body)
            .unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"))
    }

    pub fn goto(&self, url: &str) {
        self.must("POST", "/url", Some(json!({ "url": url })));
    }

    pub fn url(&self) -> String {
        self.must("GET", "/url", None)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub fn try_find(&self, css: &str) -> Option<Element> {
        self.call(
            "POST",
            "/element",
            Some(json!({"using": "css selector", "value": css})),
        )
        .ok()
        .and_then(|v| v[ELEMENT].as_str().map(|s| Element(s.to_string())))
    }

    /// Waits up to `timeout` for an element.
    pub fn wait(&self, css: &str, timeout: Duration) -> Element {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(e) = self.try_find(css) {
                return e;
            }
            assert!(
                Instant::now() < deadline,
                "no element {css:?} at {} after {timeout:?}; page:\n{}",
                self.url(),
                self.text_of_page()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn find(&self, css: &str) -> Element {
        self.wait(css, Duration::from_secs(15))
    }

    pub fn click(&self, e: &Element) {
        self.must("POST", &format!("/element/{}/click", e.0), Some(json!({})));
    }

    pub fn click_css(&self, css: &str) {
        let e = self.find(css);
        self.click(&e);
    }

    pub fn type_into(&self, css: &str, text: &str) {
        let e = self.find(css);
        self.must("POST", &format!("/element/{}/clear", e.0), Some(json!({})));
        self.must(
            "POST",
            &format!("/element/{}/value", e.0),
            Some(json!({ "text": text })),
        );
    }

    pub fn text(&self, e: &Element) -> String {
        self.must("GET", &format!("/element/{}/text", e.0), None)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub fn text_of(&self, css: &str) -> String {
        let e = self.find(css);
        self.text(&e)
    }

    pub fn text_of_page(&self) -> String {
        self.call("POST", "/execute/sync", Some(json!({"script": "return document.body ? document.body.innerText : ''", "args": []})))
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    }

    /// Waits until the element's text contains `needle`.
    pub fn wait_text(&self, css: &str, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(e) = self.try_find(css) {
                if let Ok(Value::String(t)) =
                    self.call("GET", &format!("/element/{}/text", e.0), None)
                {
                    if t.contains(needle) {
                        return t;
                    }
                }
            }
            assert!(
                Instant::now() < deadline,
                "{css:?} never contained {needle:?} at {}; page:\n{}",
                self.url(),
                self.text_of_page()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn execute(&self, script: &str, args: Value) -> Value {
        self.must(
            "POST",
            "/execute/sync",
            Some(json!({ "script": script, "args": args })),
        )
    }

    pub fn set_window(&self, width: u32, height: u32) {
        self.must(
            "POST",
            "/window/rect",
            Some(json!({ "width": width, "height": height })),
        );
    }

    /// Saves a PNG under `target/console-screenshots/`.
    pub fn screenshot(&self, name: &str) {
        let b64 = self.must("GET", "/screenshot", None);
        let png = base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().unwrap_or_default())
            .expect("screenshot is base64");
        assert!(png.starts_with(b"\x89PNG"), "screenshot is a PNG");
        std::fs::write(screenshot_dir().join(format!("{name}.png")), png).expect("save screenshot");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.agent.delete(&self.session).call();
    }
}

fn describe(e: ureq::Error) -> String {
    match e {
        ureq::Error::Status(code, r) => format!("{code}: {}", r.into_string().unwrap_or_default()),
        other => other.to_string(),
    }
}
