//! The README's curl examples for the vehicle entrance, run as written (with
//! the test's token and port) against the real endpoint: what the guide
//! tells an installer to type must work. curl comes from scripts/setup.sh.

use crate::common;
use crate::lpr_support;

use std::process::Command;

use common::{shared_dir, Scratch};
use lpr_support::{config, snapshot_files, Endpoint, RegisterSink, TOKEN};

fn sh(script: &str) -> serde_json::Value {
    let out = Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run sh (curl is installed by scripts/setup.sh)");
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "{script}: not JSON: {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

#[test]
fn readme_curl_examples_work_as_written() {
    let dir = Scratch::new("lpr-curl");
    let sink = RegisterSink::open(dir.path());
    sink.register("张三", "川A12345", "active");
    // The examples show the same car four times; each is meant to be decided.
    let mut c = config(dir.path(), "\"127.0.0.1\"");
    c.lpr.repeat_window_s = 0;
    let endpoint = Endpoint::start(&c, sink.clone());
    let base = format!("http://{}", endpoint.addr);
    let car = shared_dir().join("faces/group/group_six.jpg");
    let car = car.display();

    let reply = sh(&format!(
        r#"curl -s {base}/lpr/json \
  -H 'X-Gatehouse-Token: {TOKEN}' -H 'Content-Type: application/json' \
  -d '{{"gate": "car-in", "plate": "川A12345", "confidence": 0.97, "time": "2026-11-27T10:00:00+08:00"}}'"#
    ));
    assert_eq!(reply["result"], "open", "{reply}");

    let reply = sh(&format!(
        r#"printf '{{"gate": "car-in", "plate": "川A12345", "snapshot_jpeg_base64": "%s"}}' "$(base64 -w0 {car})" |
  curl -s {base}/lpr/json \
    -H 'X-Gatehouse-Token: {TOKEN}' -H 'Content-Type: application/json' --data-binary @-"#
    ));
    assert_eq!(reply["result"], "open", "{reply}");
    assert!(reply["snapshot"].is_string(), "{reply}");

    let reply = sh(&format!(
        r#"curl -s '{base}/lpr/hikvision' \
  -H 'X-Gatehouse-Token: {TOKEN}' -H 'Content-Type: application/xml' \
  --data-binary @tests/fixtures/lpr/hikvision_anpr.xml"#
    ));
    assert_eq!(reply["result"], "open", "{reply}");

    let reply = sh(&format!(
        r#"curl -s '{base}/lpr/hikvision?token={TOKEN}' \
  -F 'anpr.xml=@tests/fixtures/lpr/hikvision_anpr.xml;type=application/xml' \
  -F 'detectionPicture.jpg=@{car};type=image/jpeg'"#
    ));
    assert_eq!(reply["result"], "open", "{reply}");
    let name = reply["snapshot"].as_str().expect("snapshot kept");
    let saved = std::fs::read(dir.path().join("snapshots").join(name)).unwrap();
    assert_eq!(
        saved,
        std::fs::read(shared_dir().join("faces/group/group_six.jpg")).unwrap()
    );

    assert_eq!(sink.calls().len(), 4);
    assert_eq!(snapshot_files(dir.path()).len(), 2);
}
