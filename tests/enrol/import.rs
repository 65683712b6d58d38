//! `gatehouse import residents`: encodings, every kind of bad row, all or
//! nothing, idempotence, --dry-run and --skip-invalid, against real SQLite.

use crate::enrol_support;

use enrol_support::{id_number, residents_csv, Site, HEADER};
use gatehouse::domain::{ResidentId, ResidentRole};
use gatehouse::enrol::import::{import_residents, ImportOptions};
use gatehouse::store::people;

fn gb18030(text: &str) -> Vec<u8> {
    let (bytes, _, unmappable) = encoding_rs::GB18030.encode(text);
    assert!(!unmappable);
    bytes.into_owned()
}

fn count(site: &Site, table: &str) -> i64 {
    site.store()
        .conn()
        .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
        .unwrap()
}

#[test]
fn imports_a_utf8_file_with_cards_plates_and_addresses() {
    let site = Site::new("imp-utf8");
    let file = site.write("r.csv", residents_csv(0, 30).as_bytes());
    let out = site.ok(&["import", "residents", file.to_str().unwrap()]);
    assert!(out.contains("(UTF-8, 30 row(s)): 30 added"), "{out}");
    assert!(out.contains("30 card(s) and 10 vehicle(s) added"), "{out}");
    assert_eq!(count(&site, "person"), 30);
    let p = people::get(site.store().conn(), ResidentId(3)).unwrap();
    assert_eq!(p.name, "李娜");
    assert_eq!(p.valid_until.unwrap().to_string(), "2027-06-30");
    assert_eq!(p.address.unwrap().to_string(), "3-3-103");
    assert_eq!(
        p.id_masked.unwrap(),
        gatehouse::domain::mask::mask_all(&id_number(2))
    );
    let listed = site.ok(&["resident", "list", "--card", "0:2", "--format", "csv"]);
    assert!(listed.contains("R3,李娜"), "{listed}");
}

#[test]
fn imports_utf8_with_bom_and_gb18030_as_excel_saves_them() {
    let text = format!("{HEADER}张三,510105199001011237,13800000000,3栋,2单元,501室,租户,2027/6/30,10:12345,川A12345\n");
    for (name, bytes, encoding) in [
        (
            "bom.csv",
            [&[0xEF, 0xBB, 0xBF][..], text.as_bytes()].concat(),
            "UTF-8 with BOM",
        ),
        ("gb.csv", gb18030(&text), "GB18030"),
    ] {
        let site = Site::new("imp-enc");
        let file = site.write(name, &bytes);
        let out = site.ok(&["import", "residents", file.to_str().unwrap()]);
        assert!(
            out.contains(&format!("({encoding}, 1 row(s)): 1 added")),
            "{out}"
        );
        let p = people::get(site.store().conn(), ResidentId(1)).unwrap();
        assert_eq!(p.name, "张三", "{name}");
        assert_eq!(p.role, ResidentRole::Tenant);
        assert_eq!(p.address.unwrap().to_string(), "3-2-501");
        assert_eq!(p.valid_until.unwrap().to_string(), "2027-06-30");
    }
}

#[test]
fn accepts_chinese_column_names() {
    let site = Site::new("imp-zh");
    let text = "姓名,身份证号,手机号,楼栋,单元,房号,角色,有效期至,卡号,车牌\n王芳,11010519491231002X,,1,1,101,业主,,,\n";
    let file = site.write("zh.csv", &gb18030(text));
    site.ok(&["import", "residents", file.to_str().unwrap()]);
    let p = people::get(site.store().conn(), ResidentId(1)).unwrap();
    assert_eq!((p.name.as_str(), p.role), ("王芳", ResidentRole::Owner));
}

#[test]
fn one_bad_row_aborts_everything_reports_every_problem_and_leaves_the_register_exactly_as_it_was() {
    let site = Site::new("imp-bad");
    let good = site.write("good.csv", residents_csv(0, 5).as_bytes());
    site.ok(&["import", "residents", good.to_str().unwrap()]);
    let before = site.dump();
    // Line 2 good; then one row per problem the issue names.
    let mut text = residents_csv(100, 1);
    text.push_str(&format!("坏校验,{},,,,,tenant,,,\n", "510105199001011238"));
    text.push_str(&format!("未知角色,{},,,,,landlord,,,\n", id_number(101)));
    text.push_str(&format!(
        "坏日期,{},,,,,tenant,2027-02-30,,\n",
        id_number(102)
    ));
    text.push_str(&format!("重复卡,{},,,,,tenant,,0:1,\n", id_number(103)));
    text.push_str(&format!("重复证件,{},,,,,tenant,,,\n", id_number(100)));
    text.push_str(&format!("坏车牌,{},,,,,tenant,,,XA12345\n", id_number(104)));
    text.push_str(&format!("坏手机,{},123,,,,tenant,,,\n", id_number(105)));
    text.push_str(&format!("卡重复行,{},,,,,owner,,100:1,\n", id_number(106)));
    text.push_str(&format!(
        "卡重复行二,{},,,,,owner,,100:1,\n",
        id_number(107)
    ));
    let file = site.write("bad.csv", text.as_bytes());
    let out = site.run(&["import", "residents", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    let expected = [
        "line 3: id_number: checksum digit should be 7",
        "line 4: role: unknown role \"landlord\"",
        "line 5: valid_until: \"2027-02-30\" is not a real date",
        "line 6: card: duplicate card: 0:1 is already assigned to R2",
        "line 7: id_number: duplicate ID number (also on line 2)",
        "line 8: plate: plate \"XA12345\": must start with a province character",
        "line 9: phone: \"123\" has 3 digits",
        "line 11: card: duplicate card 100:1 (also on line 10)",
        "import aborted: 8 problem(s) in 8 row(s); nothing was written",
    ];
    for e in expected {
        assert!(err.contains(e), "missing {e:?} in:\n{err}");
    }
    assert_eq!(site.dump(), before, "the register changed");
    // The same check through the library reports the same lines.
    let store = site.store();
    let report = import_residents(
        &store,
        "test",
        "bad.csv",
        text.as_bytes(),
        ImportOptions::default(),
        &mut |_, _| {},
    )
    .unwrap();
    assert!(!report.committed);
    let lines: Vec<u64> = report.errors.iter().map(|e| e.line).collect();
    assert_eq!(lines, [3, 4, 5, 6, 7, 8, 9, 11]);
    drop(store);
    assert_eq!(site.dump(), before);
}

#[test]
fn importing_the_same_file_twice_changes_nothing_the_second_time() {
    let site = Site::new("imp-idem");
    let file = site.write("r.csv", residents_csv(0, 50).as_bytes());
    site.ok(&["import", "residents", file.to_str().unwrap()]);
    let after_first = site.dump();
    let out = site.ok(&["import", "residents", file.to_str().unwrap()]);
    assert!(out.contains("nothing to change"), "{out}");
    assert_eq!(site.dump(), after_first);
}

#[test]
fn reimport_updates_changed_people_and_adds_new_credentials_only() {
    let site = Site::new("imp-update");
    let file = site.write("r.csv", residents_csv(0, 3).as_bytes());
    site.ok(&["import", "residents", file.to_str().unwrap()]);
    let changed = residents_csv(0, 3)
        .replace("13900000001", "13700000001")
        .replace(",0:2,", ",0:2;7:7,");
    let file = site.write("r2.csv", changed.as_bytes());
    let out = site.ok(&["import", "residents", file.to_str().unwrap()]);
    assert!(
        out.contains("0 added, 2 updated, 1 unchanged; 1 card(s)"),
        "{out}"
    );
    let p = people::get(site.store().conn(), ResidentId(2)).unwrap();
    assert_eq!(p.phone.unwrap().as_str(), "13700000001");
    assert_eq!(count(&site, "card"), 4);
}

#[test]
fn dry_run_reports_but_writes_nothing() {
    let site = Site::new("imp-dry");
    let before = site.dump();
    let file = site.write("r.csv", residents_csv(0, 10).as_bytes());
    let out = site.ok(&["import", "residents", file.to_str().unwrap(), "--dry-run"]);
    assert!(out.contains("would be 10 added"), "{out}");
    assert_eq!(site.dump(), before);
}

#[test]
fn skip_invalid_imports_the_good_rows_and_lists_the_bad() {
    let site = Site::new("imp-skip");
    let mut text = residents_csv(0, 4);
    text.push_str("坏行,510105199001011238,,,,,tenant,,,\n");
    let file = site.write("r.csv", text.as_bytes());
    let out = site.run(&[
        "import",
        "residents",
        file.to_str().unwrap(),
        "--skip-invalid",
        "--format",
        "json",
    ]);
    assert!(out.status.success());
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["added"], 4);
    assert_eq!(report["skipped"], 1);
    assert_eq!(report["errors"][0]["line"], 6);
    assert_eq!(report["errors"][0]["column"], "id_number");
    assert_eq!(count(&site, "person"), 4);
}

#[test]
fn header_and_encoding_problems_are_reported_as_line_1() {
    let site = Site::new("imp-header");
    let cases: &[(&[u8], &str)] = &[
        (b"name,phone\n", "line 1: header: missing column id_number"),
        (
            b"name,id_number,role,shoe_size\n",
            "line 1: header: unknown column \"shoe_size\"",
        ),
        (&[0xFF, 0xFE, b'n', 0], "UTF-16"),
        (b"name,id_number,role\n\xFF\xFF,1,owner\n", "neither UTF-8"),
    ];
    for (bytes, expected) in cases {
        let file = site.write("h.csv", bytes);
        let (code, err) = site.fails(&["import", "residents", file.to_str().unwrap()]);
        assert_eq!(code, 1);
        assert!(err.contains(expected), "{expected}: {err}");
    }
    let (code, err) = site.fails(&["import", "residents", "/nonexistent/x.csv"]);
    assert_eq!(code, 1);
    assert!(err.contains("cannot read /nonexistent/x.csv"), "{err}");
}

#[test]
fn rows_with_the_wrong_number_of_fields_are_named() {
    let site = Site::new("imp-fields");
    let text = format!("{HEADER}张三,{},13800000000\n", id_number(1));
    let file = site.write("r.csv", text.as_bytes());
    let (_, err) = site.fails(&["import", "residents", file.to_str().unwrap()]);
    assert!(
        err.contains("line 2: row: has 3 fields, the header has 10"),
        "{err}"
    );
}

#[test]
fn excel_numbers_mangled_into_floats_get_a_helpful_message() {
    let site = Site::new("imp-excel");
    let text = format!(
        "{HEADER}张三,5.10105E+17,,,,,tenant,,,\n李四,'{},,,,,tenant,,,\n",
        id_number(7)
    );
    let file = site.write("r.csv", text.as_bytes());
    let (_, err) = site.fails(&["import", "residents", file.to_str().unwrap()]);
    assert!(
        err.contains("line 2: id_number: Excel turned the number into a float"),
        "{err}"
    );
    assert!(
        !err.contains("line 3"),
        "a leading apostrophe is Excel's text marker: {err}"
    );
}

#[test]
fn a_file_without_optional_columns_leaves_those_fields_alone() {
    let site = Site::new("imp-partial");
    let file = site.write("full.csv", residents_csv(0, 3).as_bytes());
    site.ok(&["import", "residents", file.to_str().unwrap()]);
    let before = site.dump();
    let mut partial = String::from("name,id_number,role\n");
    for line in residents_csv(0, 3).lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        partial.push_str(&format!("{},{},{}\n", f[0], f[1], f[6]));
    }
    let file = site.write("partial.csv", partial.as_bytes());
    let out = site.ok(&["import", "residents", file.to_str().unwrap()]);
    assert!(out.contains("nothing to change"), "{out}");
    assert_eq!(site.dump(), before);
    let file = site.write("half.csv", b"name,id_number,role,building\n");
    let (_, err) = site.fails(&["import", "residents", file.to_str().unwrap()]);
    assert!(
        err.contains("columns building, unit and room go together"),
        "{err}"
    );
}
