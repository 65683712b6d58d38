//! The console over plain HTTP against the real daemon (`gatehouse run`):
//! forms without their CSRF token are refused and change nothing, sign-in is
//! rate-limited, roles are enforced on posts as well as pages, the setup link
//! only works with its token, the spreadsheet import reports every bad line
//! and writes nothing, the entry-log CSV export, and HTTPS with a configured
//! certificate.

use crate::common;
use crate::console_support;

use std::process::Command;

use console_support::{Gateway, Http, MANAGER, MANAGER_PASSWORD};
use gatehouse::store::console::{audit_rows, AuditFilter};
use gatehouse::store::Store;

fn count(gw: &Gateway, table: &str) -> i64 {
    let store = Store::open(&gw.dir.path().join("gatehouse.db"), gw.dir.path()).unwrap();
    store
        .conn()
        .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
        .unwrap()
}

fn signed_in_manager(gw: &Gateway) -> Http {
    let mut http = Http::new(&gw.base);
    let r = http.setup(&gw.setup_link());
    assert_eq!(r.status, 303, "{}", r.body);
    http
}

const TENANT: &[(&str, &str)] = &[
    ("name", "李四"),
    ("role", "tenant"),
    ("id_kind", "resident_id"),
    ("id_number", ""),
    ("address", "3-2-502"),
];

fn with_token<'a>(token: &'a str, fields: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut v = vec![("_csrf", token)];
    v.extend_from_slice(fields);
    v
}

#[test]
fn form_posted_without_its_csrf_token_is_refused_and_changes_nothing() {
    let gw = Gateway::start("console-csrf");
    let mut http = signed_in_manager(&gw);
    let before = count(&gw, "person");

    let r = http.post("/residents/new", TENANT);
    assert_eq!(r.status, 403, "no token: {}", r.body);
    assert!(r.body.contains("CSRF"), "{}", r.body);
    let r = http.post("/residents/new", &with_token("forged-token", TENANT));
    assert_eq!(r.status, 403, "wrong token");
    // Another session's token is no good either.
    let mut other = Http::new(&gw.base);
    assert_eq!(other.login(MANAGER, MANAGER_PASSWORD).status, 303);
    let theirs = other.csrf();
    let r = http.post("/residents/new", &with_token(&theirs, TENANT));
    assert_eq!(r.status, 403, "another session's token");
    assert_eq!(count(&gw, "person"), before, "nothing was written");

    // The same form with the session's own token goes through.
    let mine = http.csrf();
    let r = http.post("/residents/new", &with_token(&mine, TENANT));
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(count(&gw, "person"), before + 1);

    // Forms shown before sign-in carry a token too.
    let mut anon = Http::new(&gw.base);
    let r = anon.post(
        "/login",
        &[("name", MANAGER), ("password", MANAGER_PASSWORD)],
    );
    assert_eq!(r.status, 403, "login without its token");
    // Sign-out is a form as well: without the token the session survives.
    let r = http.post("/logout", &[]);
    assert_eq!(r.status, 403);
    assert_eq!(http.get("/residents").status, 200);
    let token = http.csrf();
    assert_eq!(http.post("/logout", &[("_csrf", &token)]).status, 303);
    let r = http.get("/residents");
    assert_eq!(r.status, 303, "signed out");
    assert!(r.location.unwrap_or_default().starts_with("/login"));
}

#[test]
fn setup_link_needs_its_token_and_closes_once_used() {
    let gw = Gateway::start("console-setup");
    let mut anon = Http::new(&gw.base);
    assert_eq!(anon.get("/setup?token=guessed").status, 403);
    assert_eq!(
        anon.get("/residents").status,
        303,
        "nothing without an account"
    );
    let mut http = signed_in_manager(&gw);
    assert_eq!(http.get("/residents").status, 200);
    let link = gw.setup_link();
    let path = link.strip_prefix(&gw.base).unwrap();
    assert_eq!(anon.get(path).status, 410, "the link works once");
    let log = gw.log_text();
    assert!(
        !log.contains(MANAGER_PASSWORD),
        "the password never reaches the log"
    );
}

#[test]
fn sign_in_is_refused_after_five_failures() {
    let gw = Gateway::start("console-limit");
    drop(signed_in_manager(&gw));
    let mut http = Http::new(&gw.base);
    for i in 0..5 {
        let r = http.login(MANAGER, &format!("wrong password {i}"));
        assert_eq!(r.status, 401, "attempt {i}");
    }
    let r = http.login(MANAGER, MANAGER_PASSWORD);
    assert_eq!(r.status, 429, "even the right password waits: {}", r.body);
    assert!(r.body.contains("分钟后再试"), "{}", r.body);
    let store = Store::open(&gw.dir.path().join("gatehouse.db"), gw.dir.path()).unwrap();
    let failed = audit_rows(
        store.conn(),
        &AuditFilter {
            action: Some("console.login_failed".into()),
            ..AuditFilter::default()
        },
    )
    .unwrap();
    assert_eq!(failed.len(), 6, "every refused attempt is audited");
    assert!(failed[0]
        .detail
        .as_deref()
        .unwrap_or("")
        .contains("rate limited"));
}

#[test]
fn roles_are_enforced_on_posts_as_well_as_pages() {
    let gw = Gateway::start("console-roles");
    let mut manager = signed_in_manager(&gw);
    let token = manager.csrf();
    for (name, role) in [("guard1", "guard"), ("audit1", "auditor")] {
        let r = manager.post(
            "/accounts/new",
            &[
                ("_csrf", &token),
                ("name", name),
                ("role", role),
                ("password", "long enough 2025"),
            ],
        );
        assert_eq!(r.status, 303, "{}", r.body);
    }
    let mut guard = Http::new(&gw.base);
    assert_eq!(
        guard
            .login("guard1", "long enough 2025")
            .location
            .as_deref(),
        Some("/live")
    );
    let token = guard.csrf();
    let r = guard.post("/residents/new", &with_token(&token, TENANT));
    assert_eq!(r.status, 403, "a guard cannot add residents");
    assert_eq!(count(&gw, "person"), 0);
    for path in [
        "/residents",
        "/residents/new",
        "/import",
        "/accounts",
        "/log",
        "/audit",
    ] {
        assert_eq!(guard.get(path).status, 403, "guard GET {path}");
    }
    for path in ["/live", "/visitors", "/status"] {
        assert_eq!(guard.get(path).status, 200, "guard GET {path}");
    }
    let status = guard.get("/status").body;
    for shown in [
        "东门 入口",
        "车辆入口",
        "id=\"outbox\"",
        "id=\"disk-free\"",
        "mobilefacenet",
    ] {
        assert!(
            status.contains(shown),
            "device status shows {shown}: {status}"
        );
    }
    let r = guard.post(
        "/gates/open",
        &[
            ("_csrf", &token),
            ("gate", "east"),
            ("reason", "delivery at the gate"),
        ],
    );
    assert_eq!(r.status, 303);

    let mut auditor = Http::new(&gw.base);
    assert_eq!(
        auditor
            .login("audit1", "long enough 2025")
            .location
            .as_deref(),
        Some("/log")
    );
    let token = auditor.csrf();
    let r = auditor.post(
        "/gates/open",
        &[("_csrf", &token), ("gate", "east"), ("reason", "x")],
    );
    assert_eq!(r.status, 403, "an auditor cannot open gates");
    assert_eq!(auditor.get("/visitors").status, 403);
    let log = auditor.get("/log");
    assert_eq!(log.status, 200);
    assert!(
        log.body.contains("远程开门"),
        "the guard's open is in the log: {}",
        log.body
    );
    let csv = auditor.get("/log.csv");
    assert_eq!(csv.status, 200);
    assert!(csv.body.starts_with('\u{feff}'), "BOM for Excel");
    assert!(
        csv.body.contains("remote,") && csv.body.contains("granted"),
        "{}",
        csv.body
    );
    assert_eq!(auditor.get("/audit").status, 200);

    let store = Store::open(&gw.dir.path().join("gatehouse.db"), gw.dir.path()).unwrap();
    let rows = audit_rows(store.conn(), &AuditFilter::default()).unwrap();
    assert!(rows
        .iter()
        .any(|r| r.actor == "console:guard1" && r.action == "gate.open"));
    assert!(rows
        .iter()
        .any(|r| r.actor == "console:audit1" && r.action == "log.export"));
}

#[test]
fn import_reports_every_bad_line_and_writes_nothing() {
    let gw = Gateway::start("console-import");
    let mut http = signed_in_manager(&gw);
    let token = http.csrf();
    let text = "姓名,身份证号,手机号,楼栋,单元,房号,角色,有效期至,卡号,车牌\n\
        张三,510105199001011237,13800000000,3栋,2单元,501室,租户,2027/6/30,10:12345,川A12345\n\
        王五,510105199001011238,,3,2,502,租户,,,\n\
        赵六,11010519491231002X,,1,1,101,landlord,,,\n";
    let (gb, _, _) = encoding_rs::GB18030.encode(text);
    let r = http.post_multipart("/import", &[("_csrf", &token)], ("file", "住户.csv", &gb));
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("GB18030"), "{}", r.body);
    assert!(
        r.body.contains("id_number") && r.body.contains("<td>3</td>"),
        "line 3 reported: {}",
        r.body
    );
    assert!(
        r.body.contains("<td>4</td>") && r.body.contains("landlord"),
        "line 4 reported"
    );
    assert!(r.body.contains("未写入任何内容"), "{}", r.body);
    assert_eq!(count(&gw, "person"), 0, "all or nothing");

    // Without its token the upload is refused before anything is read.
    let r = http.post_multipart("/import", &[], ("file", "住户.csv", &gb));
    assert_eq!(r.status, 403);

    // Skipping the bad rows imports the good one.
    let r = http.post_multipart(
        "/import",
        &[("_csrf", &token), ("skip_invalid", "1")],
        ("file", "住户.csv", &gb),
    );
    assert_eq!(r.status, 200);
    assert!(r.body.contains("已写入"), "{}", r.body);
    assert_eq!(count(&gw, "person"), 1);
    assert_eq!(count(&gw, "card"), 1);
    let page = http.get("/residents?q=%E5%BC%A0%E4%B8%89");
    assert!(
        page.body.contains("3-2-501") && page.body.contains("川A12345"),
        "{}",
        page.body
    );
}

#[test]
fn console_serves_https_with_the_configured_certificate() {
    let certs = common::Scratch::new("console-cert");
    let (cert, key) = (certs.path().join("c.pem"), certs.path().join("k.pem"));
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let extra = format!(
        "tls_cert = {:?}\ntls_key = {:?}",
        cert.display().to_string(),
        key.display().to_string()
    );
    let gw = Gateway::start_with("console-tls", &extra, "https", false);
    assert!(gw.setup_link().starts_with("https://"));
    let out = Command::new("curl")
        .args(["-sk", "-D", "-", "-o", "/dev/null"])
        .arg(format!("{}/login", gw.base))
        .output()
        .expect("curl");
    let head = String::from_utf8_lossy(&out.stdout);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.contains("gh_pre=") && head.contains("; Secure"),
        "cookies are Secure over TLS: {head}"
    );
    let plain = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
        .arg(format!(
            "http://{}/login",
            gw.base.trim_start_matches("https://")
        ))
        .output()
        .expect("curl");
    assert_ne!(
        String::from_utf8_lossy(&plain.stdout),
        "200",
        "no plain HTTP on the TLS port"
    );
}

#[test]
fn a_lost_password_is_reset_from_the_gateway_shell() {
    use std::io::Write;
    let gw = Gateway::start("console-cli");
    drop(signed_in_manager(&gw));
    let listed = gw.cli(&["console", "accounts"]);
    let text = String::from_utf8_lossy(&listed.stdout);
    assert!(
        listed.status.success() && text.contains("wang") && text.contains("manager"),
        "{text}"
    );
    let set = |password: &str| {
        let mut child = common::gatehouse()
            .arg("--config")
            .arg(&gw.config)
            .args(["console", "password", MANAGER])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
        child.wait_with_output().unwrap()
    };
    let short = set("short");
    assert_eq!(short.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&short.stderr).contains("shorter than 10"));
    assert!(set("a new long password").status.success());
    let mut http = Http::new(&gw.base);
    assert_eq!(
        http.login(MANAGER, MANAGER_PASSWORD).status,
        401,
        "the old password is gone"
    );
    assert_eq!(http.login(MANAGER, "a new long password").status, 303);
    let store = Store::open(&gw.dir.path().join("gatehouse.db"), gw.dir.path()).unwrap();
    let rows = audit_rows(
        store.conn(),
        &AuditFilter {
            action: Some("console.account.password".into()),
            ..AuditFilter::default()
        },
    )
    .unwrap();
    assert_eq!(rows.len(), 1);
    assert!(rows[0].actor.starts_with("os:"), "{:?}", rows[0]);
}

#[test]
fn the_manager_sees_recurring_strangers_with_their_snapshots_and_every_look_is_audited() {
    use gatehouse::store::strangers::{self, Sighting, StrangerPolicy};
    let gw = Gateway::start("console-strangers");
    let data = gw.dir.path();
    // The cameras saw one unregistered face on three days (as the daemon records them).
    let jpeg = std::fs::read(common::shared_dir().join("faces/identities/obama/obama_1.jpg"))
        .expect("a real photo");
    std::fs::create_dir_all(data.join("snapshots")).unwrap();
    let store = Store::open(&data.join("gatehouse.db"), data).unwrap();
    let policy = StrangerPolicy {
        threshold: 0.5,
        keep_days: 30,
        report_after_days: 3,
        utc_offset: chrono::FixedOffset::east_opt(8 * 3600).unwrap(),
    };
    for day in 0..3 {
        let name = format!("face-east-test{day}.jpg");
        std::fs::write(data.join("snapshots").join(&name), &jpeg).unwrap();
        strangers::record(
            store.conn(),
            &Sighting {
                at: chrono::Utc::now() - chrono::Duration::days(day),
                gate: "east",
                model: "mobilefacenet",
                embedding: &[0.6, 0.8],
                snapshot: Some(&name),
                event_seq: None,
            },
            &policy,
        )
        .unwrap();
    }

    let mut manager = signed_in_manager(&gw);
    let page = manager.get("/strangers");
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("stranger-table"), "{}", page.body);
    assert!(
        page.body.contains("/snapshots/face-east-test0.jpg"),
        "{}",
        page.body
    );
    let (status, kind, bytes) = manager.get_bytes("/snapshots/face-east-test0.jpg");
    assert_eq!(status, 200);
    assert_eq!(kind.as_deref(), Some("image/jpeg"));
    assert_eq!(bytes, jpeg, "the snapshot as stored");
    // Nothing outside the snapshots folder, and nothing that is not there.
    for path in [
        "/snapshots/..%2Fgatehouse.db",
        "/snapshots/gatehouse.db",
        "/snapshots/face-east-missing.jpg",
    ] {
        assert_eq!(manager.get_bytes(path).0, 404, "{path}");
    }
    let actions: Vec<String> = audit_rows(store.conn(), &AuditFilter::default())
        .unwrap()
        .into_iter()
        .map(|r| r.action)
        .collect();
    assert!(
        actions.iter().any(|a| a == "console.strangers"),
        "{actions:?}"
    );
    assert!(
        actions.iter().any(|a| a == "console.snapshot"),
        "{actions:?}"
    );

    // Anonymous visitors are sent to sign in; no snapshot leaks.
    let mut anon = Http::new(&gw.base);
    assert_ne!(anon.get_bytes("/snapshots/face-east-test0.jpg").0, 200);
}

#[test]
fn edit_form_never_shows_the_full_phone_and_an_empty_field_keeps_it() {
    let gw = Gateway::start("console-phone");
    let mut http = signed_in_manager(&gw);
    let token = http.csrf();
    let r = http.post(
        "/residents/new",
        &with_token(
            &token,
            &[
                ("name", "王五"),
                ("role", "owner"),
                ("id_kind", "resident_id"),
                ("id_number", "11010519491231002X"),
                ("phone", "13812345678"),
                ("address", "3-2-503"),
            ],
        ),
    );
    assert_eq!(r.status, 303, "{}", r.body);
    let page = r.location.expect("redirect to the new resident");
    let edit = http.get(&format!("{page}/edit"));
    assert_eq!(edit.status, 200);
    assert!(
        !edit.body.contains("13812345678"),
        "full phone in the edit form"
    );
    assert!(
        edit.body.contains("138****5678"),
        "masked phone as the hint"
    );

    // Saving the form as shown (phone field empty) keeps the number.
    let token = http.csrf();
    let r = http.post(
        &format!("{page}/edit"),
        &with_token(
            &token,
            &[
                ("name", "王五"),
                ("role", "owner"),
                ("id_kind", "resident_id"),
                ("id_number", ""),
                ("phone", ""),
                ("address", "3-2-504"),
            ],
        ),
    );
    assert_eq!(r.status, 303, "{}", r.body);
    let store = Store::open(&gw.dir.path().join("gatehouse.db"), gw.dir.path()).unwrap();
    let rid: i64 = page.rsplit('/').next().unwrap().parse().unwrap();
    let person =
        gatehouse::store::people::get(store.conn(), gatehouse::domain::ResidentId(rid)).unwrap();
    assert_eq!(
        person.phone.map(|p| p.as_str().to_string()).as_deref(),
        Some("13812345678")
    );
    assert_eq!(
        person.address.map(|a| a.to_string()).as_deref(),
        Some("3-2-504")
    );
    let reads: i64 = store
        .conn()
        .query_row(
            "SELECT count(*) FROM audit WHERE action = 'person.read_phone'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(reads, 0, "nobody asked to see the phone in full");
}

#[test]
fn the_desk_checks_an_id_number_without_seeing_it_and_the_check_is_audited() {
    let gw = Gateway::start("console-check-id");
    let mut http = signed_in_manager(&gw);
    let token = http.csrf();
    let r = http.post(
        "/residents/new",
        &with_token(
            &token,
            &[
                ("name", "赵六"),
                ("role", "owner"),
                ("id_kind", "resident_id"),
                ("id_number", "11010519491231002X"),
                ("address", "3-2-505"),
            ],
        ),
    );
    assert_eq!(r.status, 303, "{}", r.body);
    let page = r.location.expect("redirect to the new resident");
    let shown = http.get(&page);
    assert!(
        shown.body.contains("******************"),
        "masked ID on the page"
    );
    assert!(
        !shown.body.contains("110105"),
        "no part of the number is shown"
    );

    for (number, answers) in [
        (
            "11010519491231002x",
            ["证件号码一致", "matches the one on record"],
        ),
        ("510105199001011237", ["证件号码不一致", "does NOT match"]),
    ] {
        let token = http.csrf();
        let r = http.post(
            &format!("{page}/check-id"),
            &with_token(&token, &[("id_kind", "resident_id"), ("id_number", number)]),
        );
        assert_eq!(r.status, 303, "{}", r.body);
        let after = http.get(&page);
        assert!(
            answers.iter().any(|a| after.body.contains(a)),
            "{number}: {}",
            after.body
        );
        assert!(!after.body.contains(number), "the number is not echoed");
    }
    let store = Store::open(&gw.dir.path().join("gatehouse.db"), gw.dir.path()).unwrap();
    let details: Vec<String> = store
        .conn()
        .prepare("SELECT detail FROM audit WHERE action = 'person.check_id' AND actor LIKE 'console:%' ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(details.len(), 2, "{details:?}");
    assert!(details[0].contains("\"matches\":true") && details[1].contains("\"matches\":false"));
}
