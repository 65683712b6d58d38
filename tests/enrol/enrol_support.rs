//! Fixtures for the enrolment tests: a scratch site (data directory with a
//! real SQLite register) driven through the real `gatehouse` binary, valid
//! ID numbers on demand, and a logical dump to compare registers.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use gatehouse::store::Store;

use super::common::{gatehouse, Scratch};

pub struct Site {
    pub dir: Scratch,
}

impl Site {
    pub fn new(tag: &str) -> Site {
        Site {
            dir: Scratch::new(tag),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn db_path(&self) -> PathBuf {
        self.dir.path().join("gatehouse.db")
    }

    /// `gatehouse --config config/demo.toml --data-dir <scratch> ARGS…`.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = gatehouse();
        cmd.arg("--config")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("config/demo.toml"))
            .arg("--data-dir")
            .arg(self.dir.path())
            .args(args)
            .env("GATEHOUSE_LOG", "warn")
            .env("USER", "manager");
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("run gatehouse")
    }

    /// Runs a command that must succeed; returns its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "gatehouse {args:?} failed ({:?}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8 stdout")
    }

    /// Runs a command that must fail; returns (exit code, stderr).
    pub fn fails(&self, args: &[&str]) -> (i32, String) {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "gatehouse {args:?} should have failed; stdout:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    pub fn store(&self) -> Store {
        Store::open(&self.db_path(), self.dir.path()).expect("open store")
    }

    /// Every row of every table, in a stable order: equal dumps mean equal registers.
    pub fn dump(&self) -> String {
        dump(&self.store())
    }

    pub fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, bytes).expect("write file");
        p
    }
}

pub fn dump(store: &Store) -> String {
    let conn = store.conn();
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut out = String::new();
    for t in tables {
        out.push_str(&format!("== {t}\n"));
        let mut stmt = conn
            .prepare(&format!("SELECT * FROM \"{t}\" ORDER BY rowid"))
            .unwrap();
        let n = stmt.column_count();
        let rows = stmt
            .query_map([], |r| {
                let cells: Vec<String> = (0..n)
                    .map(|i| format!("{:?}", r.get_ref(i).unwrap()))
                    .collect();
                Ok(cells.join(" | "))
            })
            .unwrap();
        for row in rows {
            out.push_str(&row.unwrap());
            out.push('\n');
        }
    }
    out
}

/// A valid 18-digit resident ID number (GB 11643 check digit) for the i-th
/// test person: region 510105, a birth date from 1950 on, a sequence number.
pub fn id_number(i: u32) -> String {
    let birth = chrono::NaiveDate::from_ymd_opt(1950, 1, 1).unwrap()
        + chrono::Duration::days(i64::from(i / 1000));
    let body = format!("510105{}{:03}", birth.format("%Y%m%d"), i % 1000);
    let weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = body
        .bytes()
        .zip(weights)
        .map(|(d, w)| u32::from(d - b'0') * w)
        .sum();
    let check = ['1', '0', 'X', '9', '8', '7', '6', '5', '4', '3', '2'][(sum % 11) as usize];
    format!("{body}{check}")
}

pub const HEADER: &str = "name,id_number,phone,building,unit,room,role,valid_until,card,plate\n";

/// A CSV of `n` valid residents starting at person `first`, with a card each
/// and a plate for every third.
pub fn residents_csv(first: u32, n: u32) -> String {
    let mut s = String::from(HEADER);
    let surnames = ["张", "王", "李", "赵", "刘", "陈", "杨", "黄"];
    for i in first..first + n {
        let plate = if i % 3 == 0 {
            plate_for(i)
        } else {
            String::new()
        };
        s.push_str(&format!(
            "{}{},{},139{:08},{},{},{},{},{},{}:{},{}\n",
            surnames[(i % 8) as usize],
            ["伟", "芳", "娜", "敏", "静"][(i % 5) as usize],
            id_number(i),
            i,
            1 + i % 30,
            1 + i % 4,
            101 + i % 2000,
            ["owner", "family", "tenant"][(i % 3) as usize],
            if i % 3 == 2 { "2027-06-30" } else { "" },
            i / 60_000,
            i % 60_000,
            plate,
        ));
    }
    s
}

/// A distinct valid plate for the i-th person (川A + 5 digits, then 川B …).
pub fn plate_for(i: u32) -> String {
    let city = (b'A' + (i / 100_000) as u8) as char;
    format!("川{city}{:05}", i % 100_000)
}
