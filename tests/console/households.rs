//! The household code in the console (房屋 page): the property office
//! assigns the short number residents key at household + face gates; a code
//! is unique and 1 to 5 digits, and every change is audited.

use crate::console_support;

use console_support::{Gateway, Http};
use gatehouse::store::Store;

fn resident_at(http: &mut Http, address: &str) {
    let token = http.csrf();
    let r = http.post(
        "/residents/new",
        &[
            ("_csrf", token.as_str()),
            ("name", "李四"),
            ("role", "owner"),
            ("id_kind", "resident_id"),
            ("id_number", ""),
            ("address", address),
        ],
    );
    assert_eq!(r.status, 303, "{}", r.body);
}

fn set_code(http: &mut Http, address: &str, code: &str) -> String {
    let token = http.csrf();
    let r = http.post(
        "/households/code",
        &[
            ("_csrf", token.as_str()),
            ("address", address),
            ("code", code),
        ],
    );
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(r.location.as_deref(), Some("/households"));
    let page = http.get("/households");
    assert_eq!(page.status, 200);
    page.body
}

#[test]
fn the_office_assigns_a_household_code_that_is_unique_and_audited() {
    let gw = Gateway::start("console-household-code");
    let mut http = Http::new(&gw.base);
    assert_eq!(http.setup(&gw.setup_link()).status, 303);
    resident_at(&mut http, "3-2-501");
    resident_at(&mut http, "3-2-502");

    let page = http.get("/households");
    assert!(page.body.contains("门口户号"), "the field is on the page");
    assert!(
        page.body.contains("3*2*501#"),
        "how to key an address is explained"
    );

    let page = set_code(&mut http, "3-2-501", "3251");
    assert!(
        page.contains("value=\"3251\""),
        "the code is shown in its field"
    );
    // Taken, or too long: refused with the reason, nothing changed.
    let page = set_code(&mut http, "3-2-502", "3251");
    assert!(page.contains("already the code of 3-2-501"), "{page}");
    let page = set_code(&mut http, "3-2-502", "123456");
    assert!(page.contains("1 to 5 digits"), "{page}");
    // An empty field removes the code.
    set_code(&mut http, "3-2-501", "");

    let store = Store::open(&gw.dir.path().join("gatehouse.db"), gw.dir.path()).unwrap();
    let codes: Vec<Option<String>> = store
        .conn()
        .prepare("SELECT code FROM household ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(codes, vec![None, None]);
    let audited: i64 = store
        .conn()
        .query_row(
            "SELECT count(*) FROM audit WHERE action = 'household.code'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(audited, 2, "assigned once, removed once");
}
