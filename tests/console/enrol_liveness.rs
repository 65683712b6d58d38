//! Face enrolment at the desk warns when a photo scores as a presentation
//! attack (a photo of a photo or of a screen makes a poor template), as
//! `gatehouse face enroll` does: the same `face::enrol::enrol` path.

use crate::console_support;

use console_support::{Gateway, Http};

/// Adds a resident through the console; returns the resident's page path.
fn add_resident(http: &mut Http, name: &str) -> String {
    let token = http.csrf();
    let r = http.post(
        "/residents/new",
        &[
            ("_csrf", token.as_str()),
            ("name", name),
            ("role", "owner"),
            ("id_kind", "resident_id"),
            ("id_number", ""),
            ("address", "3-2-501"),
        ],
    );
    assert_eq!(r.status, 303, "{}", r.body);
    r.location.expect("the new resident's page")
}

fn enrol(http: &mut Http, resident_page: &str, sample: &str) -> String {
    let photo = std::fs::read(crate::common::faces_dir().join("liveness").join(sample))
        .unwrap_or_else(|e| panic!("{sample}: {e}"));
    let token = http.csrf();
    let r = http.post_multipart(
        &format!("{resident_page}/face"),
        &[("_csrf", token.as_str())],
        ("photos", sample, &photo),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("id=\"face-outcome\""), "{}", r.body);
    r.body
}

#[test]
fn the_desk_warns_about_a_photo_of_a_screen_and_not_about_the_person() {
    let gw = Gateway::start_with_faces("console-enrol-liveness");
    let mut http = Http::new(&gw.base);
    assert_eq!(http.setup(&gw.setup_link()).status, 303);

    // F2: a face shown on a tablet.
    let tablet = add_resident(&mut http, "平板");
    let page = enrol(&mut http, &tablet, "image_F2.jpg");
    assert!(
        page.contains("已登记"),
        "still enrolled, with a warning: {page}"
    );
    assert!(
        page.contains("looks like a photo of a photo or of a screen"),
        "{page}"
    );

    // T1: the person in front of the camera.
    let person = add_resident(&mut http, "本人");
    let page = enrol(&mut http, &person, "image_T1.jpg");
    assert!(page.contains("已登记"), "{page}");
    assert!(!page.contains("photo of a photo"), "{page}");
}
