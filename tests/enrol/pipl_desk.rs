//! Personal data at the desk and on the SD card (PIPL): ID numbers shown fully
//! masked and checked by typing them in, the audit of that check, and a command
//! run without a configuration writing nothing.

use crate::common;
use crate::enrol_support;

use std::process::Command;

use enrol_support::Site;
use gatehouse::domain::ResidentId;

const ID: &str = "11010519491231002X";

fn add_resident(site: &Site) {
    site.ok(&[
        "resident",
        "add",
        "--name",
        "王五",
        "--id-number",
        ID,
        "--role",
        "owner",
    ]);
}

#[test]
fn resident_show_hides_every_character_of_the_id_number() {
    let site = Site::new("mask-show");
    add_resident(&site);
    let out = site.ok(&["resident", "show", "R1"]);
    assert!(out.contains("****************** (resident_id)"), "{out}");
    for fragment in ["110105", "002X", "19491231"] {
        assert!(!out.contains(fragment), "shows {fragment}: {out}");
    }
}

#[test]
fn check_id_answers_match_or_no_match_and_audits_the_answer_not_the_number() {
    let site = Site::new("check-id");
    add_resident(&site);
    let yes = site.ok(&[
        "resident",
        "check-id",
        "R1",
        "--id-number",
        "11010519491231002x",
    ]);
    assert!(yes.starts_with("match"), "{yes}");

    let other = "510105199001011237";
    let out = site.run(&["resident", "check-id", "R1", "--id-number", other]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("no match"));

    // A number that is not valid is a usage error naming the flag, never echoed.
    let (code, err) = site.fails(&[
        "resident",
        "check-id",
        "R1",
        "--id-number",
        "110105194912310021",
    ]);
    assert_eq!(code, 2);
    assert!(
        err.contains("--id-number") && !err.contains("110105194912310021"),
        "{err}"
    );

    let store = site.store();
    let rows: Vec<(String, String, String)> = store
        .conn()
        .prepare(
            "SELECT actor, subject, detail FROM audit WHERE action = 'person.check_id' ORDER BY id",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[0].0, "os:manager");
    assert_eq!(rows[0].1, ResidentId(1).to_string());
    assert!(rows[0].2.contains("\"matches\":true"), "{}", rows[0].2);
    assert!(rows[1].2.contains("\"matches\":false"), "{}", rows[1].2);
    let all = enrol_support::dump(&store);
    assert!(
        !all.contains(ID) && !all.contains(other),
        "a number reached the database"
    );
}

#[test]
fn without_a_config_a_command_exits_2_naming_the_paths_and_writes_nothing() {
    let dir = common::Scratch::new("no-config");
    let out = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(["resident", "list"])
        .current_dir(dir.path())
        .env_remove("GATEHOUSE_CONFIG")
        .env_remove("GATEHOUSE_DATA_DIR")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("/etc/gatehouse/gatehouse.toml") && err.contains("--config"),
        "{err}"
    );
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "wrote {left:?}");
}

#[test]
fn a_gateway_keeps_its_device_secret_beside_the_config_and_its_database_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = common::Scratch::new("key-beside-config");
    std::fs::write(
        dir.path().join("g.toml"),
        "[site]\nid = \"s\"\ngateway_id = \"g\"\nname = \"n\"\n\n[store]\ndata_dir = \"data\"\n",
    )
    .unwrap();
    // The config named relative to where the command runs, as an operator would.
    let out = common::gatehouse()
        .args(["--config", "g.toml", "resident", "list"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir.path().join("device.key")), 0o600);
    let data: Vec<String> = std::fs::read_dir(dir.path().join("data"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!data.iter().any(|f| f.contains("key")), "{data:?}");
    for f in data.iter().filter(|f| f.starts_with("gatehouse.db")) {
        assert_eq!(mode(&dir.path().join("data").join(f)), 0o600, "{f}");
    }
    assert!(data.contains(&"gatehouse.db".to_string()), "{data:?}");
}
