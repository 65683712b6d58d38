//! Enrolment, removal and re-embedding through the CLI, checked against the
//! real SQLite file: what is stored (embedding + encrypted crop, never the
//! photo), what is audited, and what happens when the embedder changes.

use crate::face_support;

use face_support::{faces, path_str, stderr, stdout, FaceEnv};
use gatehouse::domain::ResidentId;
use gatehouse::store::faces as stored;

fn enrol(env: &FaceEnv, id: ResidentId, photo: &str) -> std::process::Output {
    env.run(&["face", "enroll", &id.to_string(), &path_str(&faces(photo))])
}

#[test]
fn enrolment_stores_the_embedding_and_an_encrypted_crop_not_the_photo() {
    let env = FaceEnv::new("reg-store");
    let id = env.add_person("obama");
    let out = env.run(&[
        "face",
        "enroll",
        // The bare number form of the resident id works too.
        &id.0.to_string(),
        &path_str(&faces("identities/obama/obama_1.jpg")),
        &path_str(&faces("identities/obama/obama_3.jpg")),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains(&format!("enrolled 2 face(s) for {id}")));
    let store = env.store();
    let (model, dim, emb, crop): (String, i64, Vec<u8>, Vec<u8>) = store
        .conn()
        .query_row(
            "SELECT model, dim, embedding, crop FROM face WHERE person_id = ?1 ORDER BY id LIMIT 1",
            [id.0],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap();
    assert_eq!(model, "mobilefacenet");
    assert_eq!(dim, 128);
    assert_eq!(emb.len(), 128 * 4);
    let v: Vec<f32> = emb
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!(
        (norm - 1.0).abs() < 1e-4,
        "stored embedding is unit length, got {norm}"
    );
    // nonce (12) + 112×112×3 pixels + GCM tag (16)
    assert_eq!(crop.len(), 12 + 112 * 112 * 3 + 16);
    let plain = stored::decrypt_crop(store.secret(), id, &crop).unwrap();
    assert_eq!(plain.len(), 112 * 112 * 3);
    assert!(
        !crop.windows(32).any(|w| w == &plain[5000..5032]),
        "crop pixels visible in the database"
    );
    let audits: i64 = store
        .conn()
        .query_row(
            "SELECT count(*) FROM audit WHERE action = 'face.enroll' AND subject = ?1",
            [id.to_string()],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(audits, 1);
}

#[test]
fn enrolling_someone_not_in_the_register_is_refused() {
    let env = FaceEnv::new("reg-unknown");
    let out = enrol(&env, ResidentId(99), "identities/obama/obama_1.jpg");
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no resident R99"), "{}", stderr(&out));
    let out = env.run(&[
        "face",
        "enroll",
        "X9",
        &path_str(&faces("identities/obama/obama_1.jpg")),
    ]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "a malformed id is a usage error"
    );
}

#[test]
fn a_face_that_already_matches_another_resident_is_enrolled_with_a_warning() {
    let env = FaceEnv::new("reg-dup");
    let first = env.add_person("obama");
    let second = env.add_person("obama again");
    assert!(enrol(&env, first, "identities/obama/obama_1.jpg")
        .status
        .success());
    let out = enrol(&env, second, "identities/obama/obama_2.jpg");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("already matches {first}")),
        "{}",
        stderr(&out)
    );
    // A different person gives no warning.
    let third = env.add_person("biden");
    let out = enrol(&env, third, "identities/biden/biden_1.jpg");
    assert!(
        !stderr(&out).contains("already matches"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn removing_faces_and_removing_the_person_both_delete_them() {
    let env = FaceEnv::new("reg-remove");
    let a = env.add_person("kit");
    let b = env.add_person("rose");
    assert!(enrol(&env, a, "identities/kit_harington/kit_1.jpg")
        .status
        .success());
    assert!(enrol(&env, b, "identities/rose_leslie/rose_1.jpg")
        .status
        .success());
    let out = env.run(&["face", "remove", &a.to_string()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains(&format!("removed 1 face(s) of {a}")));
    let out = env.run(&["face", "remove", &a.to_string()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("has no enrolled faces"));
    let store = env.store();
    assert_eq!(stored::list(store.conn(), None).unwrap().len(), 1);
    // Deleting the person row cascades to the faces.
    store
        .conn()
        .execute("DELETE FROM person WHERE id = ?1", [b.0])
        .unwrap();
    assert!(stored::list(store.conn(), None).unwrap().is_empty());
}

#[test]
fn changing_the_embedder_marks_faces_stale_and_reembed_recomputes_them_from_the_crops() {
    let mut env = FaceEnv::with_models(
        "reg-reembed",
        &["yunet-2026may", "mobilefacenet", "facenet-vggface2"],
    );
    let obama = env.add_person("obama");
    let biden = env.add_person("biden");
    assert!(enrol(&env, obama, "identities/obama/obama_1.jpg")
        .status
        .success());
    assert!(enrol(&env, biden, "identities/biden/biden_1.jpg")
        .status
        .success());

    env.config.models.embedder = "facenet-vggface2".into();
    env.write_config();
    let out = env.run(&["face", "list"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).matches("STALE").count(), 2, "{}", stdout(&out));
    // Stale faces are not matched: the 512-d gallery is empty.
    let probe = path_str(&faces("identities/obama/obama_2.jpg"));
    let out = env.run(&["face", "identify", &probe]);
    assert!(
        stdout(&out).contains("0 faces (facenet-vggface2)"),
        "{}",
        stdout(&out)
    );
    assert!(stdout(&out).contains(": unknown"), "{}", stdout(&out));

    let out = env.run(&["face", "reembed"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("re-embedded 2 face(s) with facenet-vggface2"));
    let out = env.run(&["face", "list"]);
    assert!(!stdout(&out).contains("STALE"), "{}", stdout(&out));
    let store = env.store();
    let dim: i64 = store
        .conn()
        .query_row("SELECT DISTINCT dim FROM face", [], |r| r.get(0))
        .unwrap();
    assert_eq!(dim, 512);
    let read: i64 = store
        .conn()
        .query_row(
            "SELECT count(*) FROM audit WHERE action = 'face.read_crops'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(read, 1, "reading the crops is audited");
    drop(store);
    // The same code path now identifies with the 512-d embedder.
    let out = env.run(&["face", "identify", &probe]);
    assert!(
        stdout(&out).contains(&format!("MATCH {obama}")),
        "{}",
        stdout(&out)
    );
    let out = env.run(&["face", "reembed"]);
    assert!(
        stdout(&out).contains("already embedded"),
        "{}",
        stdout(&out)
    );
}

/// Writes a derived test image (PNG) made from a real photo.
fn derived(
    env: &FaceEnv,
    name: &str,
    make: impl Fn(&opencv::core::Mat) -> opencv::core::Mat,
) -> String {
    let src = gatehouse::face::photo::load(&faces("identities/obama/obama_1.jpg")).unwrap();
    let out = env.dir.path().join(name);
    let img = make(&src);
    assert!(opencv::imgcodecs::imwrite(&out, &img, &opencv::core::Vector::new()).unwrap());
    path_str(&out)
}

#[test]
fn enrolment_names_each_refused_photo_and_why() {
    use opencv::core::{Mat, Rect, Size, BORDER_DEFAULT};
    use opencv::imgproc;
    use opencv::prelude::MatTraitConst;
    let env = FaceEnv::new("reg-refused");
    let id = env.add_person("obama");
    let tiny = derived(&env, "tiny.png", |m| {
        let mut out = Mat::default();
        imgproc::resize(
            m,
            &mut out,
            Size::new(91, 114),
            0.0,
            0.0,
            imgproc::INTER_AREA,
        )
        .unwrap();
        out
    });
    let blurred = derived(&env, "blurred.png", |m| {
        let mut out = Mat::default();
        imgproc::gaussian_blur(m, &mut out, Size::new(0, 0), 9.0, 9.0, BORDER_DEFAULT).unwrap();
        out
    });
    // The wall behind him: a real photo without a face.
    let wall = derived(&env, "wall.png", |m| {
        Mat::roi(m, Rect::new(0, 700, 300, 300))
            .unwrap()
            .try_clone()
            .unwrap()
    });
    let out = env.run(&["face", "enroll", &id.to_string(), &tiny, &blurred, &wall]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("tiny.png: the face is too small ("), "{err}");
    assert!(
        err.contains("blurred.png: the face is too blurred (sharpness"),
        "{err}"
    );
    assert!(err.contains("wall.png: no face found"), "{err}");
    assert!(err.contains("3 of 3 photo(s) refused"), "{err}");
    assert!(stored::list(env.store().conn(), None).unwrap().is_empty());
}
