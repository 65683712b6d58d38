//! A power cut or `kill -9` in the middle of a large import must leave the
//! previous register intact: the import is one SQLite transaction, so the
//! half-written rows are never committed.

use crate::enrol_support;

use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;

use enrol_support::{residents_csv, Site};

#[test]
fn kill_9_during_a_large_import_leaves_the_previous_register_intact() {
    let site = Site::new("crash");
    let small = site.write("small.csv", residents_csv(0, 100).as_bytes());
    site.ok(&["import", "residents", small.to_str().unwrap()]);
    let before = site.dump();

    // 30,000 new residents: long enough in a debug build to be caught mid-way.
    let big = site.write("big.csv", residents_csv(1000, 30_000).as_bytes());
    let mut child = site
        .cmd(&["import", "residents", big.to_str().unwrap()])
        .env("GATEHOUSE_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("importing residents") {
                let _ = tx.send(line);
            }
        }
    });
    let progress = rx.recv_timeout(Duration::from_secs(300));
    let still_running = child.try_wait().unwrap().is_none();
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    let progress = progress.expect("the import reported progress");
    assert!(progress.contains("30000"), "{progress}");
    assert!(
        still_running,
        "the import finished before it could be killed"
    );
    assert_eq!(status.signal(), Some(9), "{status:?}");

    let store = site.store();
    let check: String = store
        .conn()
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    drop(store);
    assert_eq!(site.dump(), before, "the register changed");
    // And the register still takes changes.
    site.ok(&["resident", "add", "--name", "新住户", "--role", "owner"]);
}
