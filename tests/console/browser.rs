//! The web console end to end in headless Chromium against the real daemon
//! (`gatehouse run`, simulated gates, a real SQLite file): first setup from
//! the logged link, sign-in, adding a tenant, enrolling their face from photos
//! (a group photo refused, a look-alike warned, a camera frame checked),
//! assigning a card by swiping it
//! at a reader, that card opening the gate and "通过" appearing on the live
//! page by server-sent events, a guard kept out of the resident editor but
//! issuing a visitor pass whose PIN opens the gate, the English switch and a
//! phone-sized page. Screenshots go to `target/console-screenshots/`.

use crate::common;
use crate::console_support;

use std::time::Duration;

use console_support::{Browser, Driver, Gateway, MANAGER, MANAGER_PASSWORD};
use gatehouse::store::console::{audit_rows, AuditFilter};
use gatehouse::store::Store;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(30);
/// Loading the face models and analysing photos on a busy machine.
const FACE_WAIT: Duration = Duration::from_secs(120);

fn count(b: &Browser, css: &str) -> u64 {
    b.execute(
        "return document.querySelectorAll(arguments[0]).length;",
        json!([css]),
    )
    .as_u64()
    .unwrap_or(0)
}

/// Chooses files in the face form and submits it.
fn upload(b: &Browser, files: &[std::path::PathBuf]) {
    let paths: Vec<String> = files
        .iter()
        .map(|p| {
            std::fs::canonicalize(p)
                .expect("photo exists")
                .display()
                .to_string()
        })
        .collect();
    b.type_into("#face-photos", &paths.join("\n"));
    b.click_css("#face-upload");
}

fn stdout(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn set_value(b: &Browser, css: &str, value: &str) {
    b.execute(
        "const e = document.querySelector(arguments[0]); e.value = arguments[1]; return e.value;",
        json!([css, value]),
    );
}

#[test]
fn manager_enrols_a_tenant_whose_card_then_opens_the_gate_live() {
    let gw = Gateway::start_with_faces("console-browser");
    let driver = Driver::start();
    let b = Browser::start(&driver);

    // First setup from the one-time link in the daemon's log.
    let link = gw.setup_link();
    b.goto(&link);
    b.wait_text("h1", "创建第一个物业经理账号", WAIT);
    b.type_into("#f-name", MANAGER);
    b.type_into("#f-password", MANAGER_PASSWORD);
    b.type_into("#f-confirm", MANAGER_PASSWORD);
    b.screenshot("01-setup");
    b.click_css("#setup-submit");
    b.wait_text("h1", "住户", WAIT);
    assert!(b.url().ends_with("/residents"), "{}", b.url());
    // The link works once.
    b.goto(&link);
    b.wait_text("h1", "已完成初始设置", WAIT);

    // Sign out and in again with the new password.
    b.goto(&format!("{}/residents", gw.base));
    b.click_css("header form button");
    b.wait_text("h1", "登录", WAIT);
    b.type_into("#f-name", MANAGER);
    b.type_into("#f-password", "wrong password!");
    b.click_css("#login-submit");
    b.wait_text("p.error", "账号或密码错误", WAIT);
    b.type_into("#f-name", MANAGER);
    b.type_into("#f-password", MANAGER_PASSWORD);
    b.screenshot("02-login");
    b.click_css("#login-submit");
    b.wait_text("h1", "住户", WAIT);

    // Add a tenant.
    b.click_css("#add-resident");
    b.wait_text("h1", "登记住户", WAIT);
    b.type_into("#f-name", "张三");
    b.type_into("#f-id_number", "510105199001011237");
    b.type_into("#f-phone", "13800000000");
    b.type_into("#f-address", "3-2-501");
    set_value(&b, "#f-valid_until", "2099-06-30");
    b.screenshot("03-add-tenant");
    b.click_css("#resident-save");
    b.wait_text("h1", "张三", WAIT);
    let facts = b.text_of("dl.facts");
    assert!(
        facts.contains("租户") && facts.contains("3-2-501"),
        "{facts}"
    );
    assert!(
        facts.contains("******************"),
        "ID shown masked: {facts}"
    );
    assert!(!b.text_of_page().contains("510105199001011237"));
    let resident_url = b.url();
    let rid = resident_url.rsplit('/').next().unwrap().to_string();

    // Enrol the tenant's face from two photos; a group photo is refused.
    b.click_css("#face-page");
    b.wait_text("h1", "人脸登记", WAIT);
    let faces = common::faces_dir();
    upload(
        &b,
        &[
            faces.join("identities/obama/obama_1.jpg"),
            faces.join("identities/obama/obama_2.jpg"),
        ],
    );
    b.wait_text("#face-outcome", "已登记 2 张人脸", FACE_WAIT);
    assert_eq!(
        count(&b, "#face-outcome figure img"),
        2,
        "each photo's face is shown"
    );
    assert!(
        b.text_of("#face-outcome").contains("双眼间距"),
        "with its quality"
    );
    assert_eq!(count(&b, "#face-table tbody tr"), 2);
    b.screenshot("04-face-enrolled");
    upload(&b, &[faces.join("group/two_people.jpg")]);
    let refused = b.wait_text("#face-refused", "未登记", FACE_WAIT);
    assert!(refused.contains("2 faces found"), "{refused}");
    assert_eq!(
        count(&b, "#face-table tbody tr"),
        2,
        "nothing more was enrolled"
    );
    b.screenshot("05-face-refused");
    b.goto(&resident_url);
    b.wait_text("h1", "张三", WAIT);

    // Assign a card by swiping it at the east reader: the browser waits while
    // a swipe is simulated once the daemon is listening for it.
    let config = gw.config.clone();
    let log = gw.log.clone();
    let swipe = std::thread::spawn(move || {
        let needle = format!("waiting for a card at reader east for R{rid}");
        let deadline = std::time::Instant::now() + WAIT;
        while !std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains(&needle)
        {
            assert!(
                std::time::Instant::now() < deadline,
                "the console never waited for a card"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        common::gatehouse()
            .arg("--config")
            .arg(&config)
            .args([
                "simulate", "wiegand", "--gate", "east", "--card", "10:12345",
            ])
            .output()
            .expect("simulate a swipe")
    });
    b.click_css("#capture-start");
    let swiped = swipe.join().expect("swipe thread");
    let said = stdout(&swiped);
    assert!(said.contains("captured for enrolment"), "{said}");
    assert!(
        !said.contains("DENIED"),
        "a captured card is not decided on: {said}"
    );
    b.wait_text("p.flash", "10:***45", WAIT);
    assert!(b.text_of("#card-table").contains("10:***45"));
    b.screenshot("06-card-assigned");

    // Another resident whose photo is the tenant's face: enrolled, with a warning.
    b.goto(&format!("{}/residents/new", gw.base));
    b.type_into("#f-name", "李雷");
    b.click_css("#f-role option[value=owner]");
    b.type_into("#f-address", "3-2-502");
    b.click_css("#resident-save");
    b.wait_text("h1", "李雷", WAIT);
    b.click_css("#face-page");
    b.wait_text("h1", "人脸登记", WAIT);
    upload(&b, &[faces.join("identities/obama/obama_3.jpg")]);
    let warned = b.wait_text("#face-outcome", "已登记 1 张人脸", FACE_WAIT);
    assert!(
        warned.contains("注意") && warned.contains("already matches R1"),
        "{warned}"
    );
    // A frame from the gate camera goes through the same checks.
    b.click_css("#face-camera");
    let taken = b.wait_text("#face-outcome", "camera east-cam", FACE_WAIT);
    assert!(
        !taken.contains("no frame") && !taken.contains("unavailable"),
        "{taken}"
    );
    b.screenshot("06b-face-warning-and-camera");

    // The live page, then that card at the gate: "通过" arrives by SSE.
    b.goto(&format!("{}/live", gw.base));
    b.wait_text("h1", "实时通行", WAIT);
    b.wait("#live-dot.on", WAIT);
    b.execute("window.__notReloaded = true; return true;", json!([]));
    let out = gw.cli(&[
        "simulate", "wiegand", "--gate", "east", "--card", "10:12345", "--output", "json",
    ]);
    let outcome: Value = serde_json::from_str(&stdout(&out)).expect("simulate json");
    assert_eq!(outcome["decision"]["result"], json!("granted"), "{outcome}");
    let seq = outcome["decision"]["event_seq"]
        .as_i64()
        .expect("event seq");
    let row = b.wait_text(&format!("#live-rows tr[data-seq=\"{seq}\"]"), "通过", WAIT);
    assert!(
        row.contains("东门") && row.contains("10:***45") && row.contains("张*"),
        "{row}"
    );
    assert_eq!(
        b.execute("return window.__notReloaded === true;", json!([])),
        json!(true),
        "the row came over the live stream, not a reload"
    );
    b.screenshot("07-live-granted");

    // The device page shows the camera's live state and the face register's stranger rate.
    b.goto(&format!("{}/status", gw.base));
    b.wait_text("#camera-status", "正常", WAIT);
    let risk = b.text_of("#stranger-risk");
    assert!(risk.contains("人脸库") && risk.contains('%'), "{risk}");
    b.screenshot("07b-devices");

    // A guard account, made by the manager.
    b.goto(&format!("{}/accounts", gw.base));
    b.type_into("#account-form #f-name", "guard1");
    b.click_css("#account-form option[value=guard]");
    b.type_into("#account-form #f-password", "night-shift-2025");
    b.click_css("#account-create");
    b.wait_text("#account-table", "guard1", WAIT);
    b.screenshot("08-accounts");
    b.click_css("header form button");
    b.wait_text("h1", "登录", WAIT);
    b.type_into("#f-name", "guard1");
    b.type_into("#f-password", "night-shift-2025");
    b.click_css("#login-submit");
    b.wait_text("h1", "实时通行", WAIT);
    let nav = b.text_of("header nav");
    assert!(
        !nav.contains("住户") && nav.contains("访客"),
        "guard nav: {nav}"
    );

    // The guard cannot reach the resident editor, however they try.
    for path in [
        "/residents/new",
        &format!(
            "/residents/{}/edit",
            resident_url.rsplit('/').next().unwrap()
        ),
        "/residents",
        "/import",
        "/accounts",
    ] {
        b.goto(&format!("{}{path}", gw.base));
        b.wait_text("h1", "无权访问", WAIT);
        assert!(
            b.try_find("#resident-form").is_none(),
            "{path} showed the editor"
        );
    }
    b.screenshot("09-guard-refused");

    // The guard issues a visitor pass for the tenant; its PIN opens the gate.
    b.goto(&format!("{}/visitors", gw.base));
    b.type_into("#f-host", "3-2-501");
    b.type_into("#f-visitor_name", "李四");
    b.type_into("#f-uses", "2");
    b.click_css("#pass-issue");
    let pin = b.wait_text("#pass-pin", "", WAIT);
    assert!(
        pin.len() == 6 && pin.bytes().all(|c| c.is_ascii_digit()),
        "PIN {pin:?}"
    );
    assert!(
        b.try_find("#pass svg path").is_some(),
        "the pass shows a QR code"
    );
    b.screenshot("10-visitor-pass");
    let out = gw.cli(&["simulate", "pin", "--gate", "east", &pin]);
    assert!(
        stdout(&out).contains("GRANTED"),
        "the visitor's PIN opens the gate"
    );

    // English on request, and a phone-sized screen.
    b.goto(&format!("{}/live", gw.base));
    b.click_css("a.lang");
    b.wait_text("h1", "Live events", WAIT);
    b.wait_text(
        &format!("#live-rows tr[data-seq=\"{seq}\"]"),
        "granted",
        WAIT,
    );
    b.set_window(390, 844);
    b.screenshot("11-live-english-phone");
    let overflow = b.execute(
        "return document.documentElement.scrollWidth <= window.innerWidth + 1;",
        json!([]),
    );
    assert_eq!(overflow, json!(true), "the page fits a phone's width");

    // Every change was audited under the account that made it.
    let store = Store::open(&gw.dir.path().join("gatehouse.db"), gw.dir.path()).unwrap();
    let rows = audit_rows(store.conn(), &AuditFilter::default()).unwrap();
    let did =
        |actor: &str, action: &str| rows.iter().any(|r| r.actor == actor && r.action == action);
    assert!(did("console:wang", "console.setup"));
    assert!(did("console:wang", "person.add"));
    assert!(did("console:wang", "card.assign"));
    assert!(did("console:wang", "console.account.create"));
    assert!(did("console:guard1", "visitor.issue"));
    assert!(did("console:-", "console.login_failed"));
    assert!(did("console:wang", "face.enroll"));
}
