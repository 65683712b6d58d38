//! Personal data at rest: no ID number in clear anywhere in the database
//! file, and a removed person's name and phone overwritten, not just unlinked.

use crate::enrol_support;

use std::io::Write;
use std::process::Stdio;

use enrol_support::{id_number, residents_csv, Site};

/// The database and its WAL after a full checkpoint, as raw bytes.
fn file_bytes(site: &Site) -> Vec<u8> {
    {
        let store = site.store();
        let busy: i64 = store
            .conn()
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))
            .unwrap();
        assert_eq!(busy, 0, "checkpoint blocked");
    }
    let mut bytes = std::fs::read(site.db_path()).unwrap();
    if let Ok(wal) = std::fs::read(site.path().join("gatehouse.db-wal")) {
        bytes.extend(wal);
    }
    bytes
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[test]
fn the_database_file_never_holds_an_id_number_in_clear() {
    let site = Site::new("privacy-id");
    let direct = "510105199001011237";
    site.ok(&[
        "resident",
        "add",
        "--name",
        "张三",
        "--id-number",
        direct,
        "--role",
        "tenant",
    ]);
    // From standard input, as the help recommends.
    let via_stdin = id_number(4242);
    let mut child = site
        .cmd(&[
            "resident",
            "add",
            "--name",
            "李四",
            "--id-number",
            "-",
            "--role",
            "owner",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{via_stdin}").unwrap();
    assert!(child.wait_with_output().unwrap().status.success());
    // Replaced by an update: neither the old nor the new number may remain.
    let updated = id_number(777);
    site.ok(&["resident", "update", "R1", "--id-number", &updated]);
    // And a spreadsheet import, searched by ID afterwards (an audited read).
    let file = site.write("r.csv", residents_csv(0, 20).as_bytes());
    site.ok(&["import", "residents", file.to_str().unwrap()]);
    site.ok(&["resident", "list", "--id-number", &id_number(3)]);

    let bytes = file_bytes(&site);
    assert!(bytes.len() > 4096, "the database has content");
    let masked = gatehouse::domain::mask::mask_all(&updated);
    assert!(
        contains(&bytes, &masked),
        "the masked form {masked} is stored"
    );
    let mut numbers = vec![direct.to_string(), via_stdin, updated];
    numbers.extend((0..20).map(id_number));
    for n in &numbers {
        assert!(
            !contains(&bytes, n),
            "ID number {n} found in the database file"
        );
        // The birth date and sequence (characters 7-17) are the sensitive middle.
        assert!(
            !contains(&bytes, &n[6..17]),
            "the middle of {n} found in the database file"
        );
    }
}

#[test]
fn removing_a_person_overwrites_their_name_and_phone_in_the_file() {
    let site = Site::new("privacy-remove");
    site.ok(&[
        "resident",
        "add",
        "--name",
        "司马相如",
        "--phone",
        "13712345678",
        "--role",
        "tenant",
        "--address",
        "9-9-909",
        "--notes",
        "备注秘密文本",
    ]);
    site.ok(&["card", "assign", "R1", "--card", "10:4242"]);
    site.ok(&["resident", "add", "--name", "王五", "--role", "owner"]);
    let before = file_bytes(&site);
    assert!(contains(&before, "司马相如") && contains(&before, "13712345678"));
    site.ok(&["resident", "remove", "R1", "--yes"]);
    let after = file_bytes(&site);
    for secret in ["司马相如", "13712345678", "备注秘密文本"] {
        assert!(
            !contains(&after, secret),
            "{secret} still in the database file"
        );
    }
    assert!(contains(&after, "王五"), "other residents stay");
    assert!(contains(&after, "司***"), "the audit keeps the masked name");
}
