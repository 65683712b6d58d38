//! Enrolling a resident's face: upload one or more photos, or take a frame
//! from a gate camera. Each photo's detected face is shown with its quality;
//! photos with no face, several faces or too low a quality are refused (and
//! then nothing is enrolled), and a face that already matches another
//! resident is enrolled with a warning.
//!
//! Enrolment is `face::enrol::enrol`, the same path as `gatehouse face
//! enroll`. Its `Matcher` (models, gallery, loaded once when the page is
//! first used) writes through the daemon's one writer and reads the gallery
//! on read-only connections.

use std::time::Duration;

use axum::extract::Path;
use base64::Engine as _;
use maud::{html, Markup};
use opencv::core::{Mat, Vector};
use serde::Deserialize;

use crate::console::auth::Perm;
use crate::console::layout::{self, csrf};
use crate::console::web::{see_other, Ctx, Page, Posted, Uploaded};
use crate::domain::ResidentId;
use crate::face::camera::{Camera, CameraOptions, Source};
use crate::face::enrol::{self, Matcher, Photo, Refused};
use crate::face::photo;
use crate::store::{faces, people};

/// Longest wait for a frame from a gate camera.
const CAMERA_WAIT: Duration = Duration::from_secs(8);
/// Most photos in one upload.
const MAX_PHOTOS: usize = 10;

/// What the page shows for one photo.
struct Preview {
    label: String,
    /// The aligned 112×112 face as a PNG data URI.
    face: Option<String>,
    quality: Option<crate::face::Quality>,
    problem: Option<String>,
}

/// What an attempt did.
struct Outcome {
    previews: Vec<Preview>,
    result: Result<enrol::Enrolment, String>,
}

fn png_data_uri(crop: &Mat) -> Option<String> {
    let mut buf = Vector::<u8>::new();
    let params = Vector::<i32>::new();
    match opencv::imgcodecs::imencode(".png", crop, &mut buf, &params) {
        Ok(true) => Some(format!(
            "data:image/png;base64,{}",
            base64::engine::general_purpose::STANDARD.encode(buf.as_slice())
        )),
        _ => None,
    }
}

/// Shows each photo's face, then enrols them all (or none). Blocking.
fn analyse_and_enrol(
    m: &mut Matcher,
    resident: ResidentId,
    photos: Vec<Photo>,
    actor: &str,
) -> Outcome {
    let mut previews = Vec::new();
    for p in &photos {
        let preview = match &p.frame {
            Err(e) => Preview {
                label: p.label.clone(),
                face: None,
                quality: None,
                problem: Some(e.to_string()),
            },
            Ok(frame) => match photo::single_face(&mut m.engine, frame) {
                Ok(face) => Preview {
                    label: p.label.clone(),
                    face: png_data_uri(&face.crop112),
                    quality: Some(face.quality),
                    problem: None,
                },
                Err(e) => Preview {
                    label: p.label.clone(),
                    face: None,
                    quality: None,
                    problem: Some(e.to_string()),
                },
            },
        };
        previews.push(preview);
    }
    // Faces enrolled meanwhile by the CLI or the other gates' desk count for
    // the "already matches" warning.
    let (model, dim, combine) = (
        m.engine.model_name().to_string(),
        m.engine.embedder.dim(),
        m.policy.combine,
    );
    match m
        .readers
        .read(|conn| crate::face::load_gallery(conn, &model, dim, combine))
        .and_then(|g| g)
    {
        Ok(g) => m.gallery = g,
        Err(e) => tracing::warn!("console: cannot refresh the face gallery: {e:#}"),
    }
    let result =
        enrol::enrol(m, resident, photos, actor).map_err(|e| match e.downcast::<Refused>() {
            Ok(refused) => refused.to_string(),
            Err(e) => format!("{e:#}"),
        });
    Outcome { previews, result }
}

/// Runs `photos` through the console's matcher (opening it on first use).
async fn process(
    ctx: &Ctx,
    resident: ResidentId,
    photos: Vec<Photo>,
    actor: String,
) -> Result<Outcome, crate::console::web::Fail> {
    let app = ctx.app.clone();
    let outcome = tokio::task::spawn_blocking(move || -> anyhow::Result<Outcome> {
        let mut slot = app.faces.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            let writer = app.handle.core().writer();
            *slot = Some(Matcher::with_writer(&app.config, writer)?);
        }
        let m = slot
            .as_mut()
            .ok_or_else(|| anyhow::anyhow!("face matcher unavailable"))?;
        Ok(analyse_and_enrol(m, resident, photos, &actor))
    })
    .await
    .map_err(|e| ctx.internal(&anyhow::anyhow!("face enrolment task failed: {e}")))?;
    match outcome {
        Ok(o) => Ok(o),
        Err(e) => Ok(Outcome {
            previews: Vec::new(),
            result: Err(format!(
                "{}: {e:#}",
                ctx.t("人脸识别不可用", "face recognition is unavailable")
            )),
        }),
    }
}

fn outcome_view(ctx: &Ctx, o: &Outcome) -> Markup {
    let l = ctx.lang;
    html! {
        section.box id="face-outcome" {
            @match &o.result {
                Ok(e) => {
                    p.flash.ok { (l.t("已登记", "Enrolled")) " " (e.face_ids.len()) " " (l.t("张人脸", "face(s)")) " (" (e.model) ")" }
                    @for w in &e.warnings { p.flash.error.warning { (l.t("注意：", "Warning: ")) (w) } }
                }
                Err(why) => p.flash.error id="face-refused" { (l.t("未登记：", "Not enrolled: ")) (why) }
            }
            div.faces {
                @for p in &o.previews {
                    figure.face {
                        @if let Some(src) = &p.face { img src=(src) alt=(p.label) width="112" height="112"; }
                        figcaption {
                            strong { (p.label) } br;
                            @if let Some(q) = &p.quality {
                                (l.t("双眼间距", "eye distance")) " " (format!("{:.0}", q.eye_px)) " px · "
                                (l.t("清晰度", "sharpness")) " " (format!("{:.0}", q.sharpness))
                            }
                            @if let Some(why) = &p.problem { br; span.pill.bad { (why) } }
                        }
                    }
                }
            }
        }
    }
}

async fn page(ctx: &Ctx, id: i64, outcome: Option<&Outcome>) -> Page {
    let me = ctx.need(Perm::Register)?;
    let person = ResidentId(id);
    let actor = me.actor();
    let loaded = ctx
        .store(move |s| {
            let p = people::show(s, &actor, person)?;
            let f = faces::list(s.conn(), Some(person))?;
            Ok((p, f))
        })
        .await?;
    let (p, enrolled) = match loaded {
        Ok(v) => v,
        Err(e) if e.to_string().starts_with("no resident") => return Err(ctx.not_found()),
        Err(e) => return Err(ctx.internal(&e)),
    };
    let l = ctx.lang;
    let offset = ctx.app.config.site.utc_offset_minutes;
    let cameras: Vec<(String, String)> = ctx
        .app
        .config
        .cameras
        .iter()
        .map(|c| (c.id.clone(), format!("{} ({})", c.id, c.gate)))
        .collect();
    let base = format!("/residents/{id}/face");
    let body = html! {
        h1 { (l.t("人脸登记", "Face enrolment")) " · " a href=(format!("/residents/{id}")) { (p.person.name) " " (p.person.id) } }
        @if let Some(o) = outcome { (outcome_view(ctx, o)) }
        h2 { (l.t("已登记的人脸", "Enrolled faces")) }
        div.table-wrap {
            table id="face-table" {
                thead { tr { th { "ID" } th { (l.t("模型", "Model")) } th { (l.t("登记时间", "Enrolled")) } } }
                tbody {
                    @for f in &enrolled {
                        tr { td { (f.id) } td { (f.model) @if f.stale { " " span.pill.bad { (l.t("需重新计算", "stale")) } } } td { (layout::local_time(&f.created_at, offset)) } }
                    }
                    @if enrolled.is_empty() { tr { td colspan="3" .muted { (l.t("还没有人脸。", "No face yet.")) } } }
                }
            }
        }
        section.box.no-print {
            form.grid method="post" action=(base) enctype="multipart/form-data" data-wait="wait-face" id="face-form" {
                (csrf(&me))
                label { span { (l.t("照片（可多选，每张只能有一张清晰的正脸）", "Photos (one or more; one clear frontal face each)")) }
                    input type="file" name="photos" id="face-photos" accept="image/*" multiple required; }
                div { button type="submit" id="face-upload" { (l.t("上传并登记", "Upload and enrol")) } }
            }
            @if !cameras.is_empty() {
                form.row method="post" action=(format!("{base}/camera")) data-wait="wait-face" {
                    (csrf(&me))
                    (layout::select(l.t("或从门口摄像头拍一张", "Or take a frame from a gate camera"), "camera", &cameras, ""))
                    button.secondary type="submit" id="face-camera" { (l.t("拍照并登记", "Capture and enrol")) }
                }
            }
            p.wait id="wait-face" role="status" { (l.t("正在检测人脸……", "Finding the face…")) }
            @if !enrolled.is_empty() {
                form.inline method="post" action=(format!("{base}/remove")) data-confirm=(l.t("删除此住户的全部人脸？", "Delete every enrolled face of this resident?")) {
                    (csrf(&me))
                    button.danger type="submit" { (l.t("删除全部人脸", "Delete all faces")) }
                }
            }
        }
    };
    Ok(layout::page(ctx, l.t("人脸登记", "Face enrolment"), body))
}

pub async fn show(ctx: Ctx, Path(id): Path<i64>) -> Page {
    page(&ctx, id, None).await
}

pub async fn upload(Path(id): Path<i64>, up: Uploaded) -> Page {
    let Uploaded {
        ctx, user, files, ..
    } = up;
    ctx.need(Perm::Register)?;
    let photos: Vec<Photo> = files
        .into_iter()
        .filter(|f| f.field == "photos")
        .take(MAX_PHOTOS)
        .map(|f| {
            let label: String = f
                .file_name
                .chars()
                .filter(|c| !c.is_control())
                .take(80)
                .collect();
            Photo::from_bytes(&label, &f.bytes)
        })
        .collect();
    let outcome = process(&ctx, ResidentId(id), photos, user.actor()).await?;
    if outcome.result.is_ok() {
        tracing::info!(resident = id, account = %user.name, "console: face enrolled");
    }
    page(&ctx, id, Some(&outcome)).await
}

#[derive(Deserialize)]
pub struct CameraForm {
    camera: String,
}

/// One frame from a configured camera (opened briefly beside the gate's own pipeline).
fn grab_frame(source: &str) -> anyhow::Result<Mat> {
    let options = CameraOptions {
        pace_files: false,
        ..CameraOptions::default()
    };
    let mut camera = Camera::open(Source::parse(source), options);
    let frame = camera.next_frame(CAMERA_WAIT);
    camera.stop();
    frame.map(|f| f.image).ok_or_else(|| {
        anyhow::anyhow!(
            "no frame from the camera within {} s",
            CAMERA_WAIT.as_secs()
        )
    })
}

pub async fn from_camera(
    Path(id): Path<i64>,
    Posted {
        ctx, user, form, ..
    }: Posted<CameraForm>,
) -> Page {
    ctx.need(Perm::Register)?;
    let Some(cam) = ctx.app.config.cameras.iter().find(|c| c.id == form.camera) else {
        return Err(ctx.bad_request(format!("no camera {:?} in the config", form.camera)));
    };
    let (source, label) = (cam.source.clone(), format!("camera {}", cam.id));
    let frame = tokio::task::spawn_blocking(move || grab_frame(&source))
        .await
        .map_err(|e| ctx.internal(&anyhow::anyhow!("camera task failed: {e}")))?;
    let photo = Photo {
        label: label.clone(),
        frame: frame.map_err(|e| photo::PhotoError::Unreadable(format!("{e:#}"))),
    };
    let outcome = process(&ctx, ResidentId(id), vec![photo], user.actor()).await?;
    page(&ctx, id, Some(&outcome)).await
}

pub async fn remove(
    Path(id): Path<i64>,
    Posted { ctx, user, .. }: Posted<super::login::Nothing>,
) -> Page {
    ctx.need(Perm::Register)?;
    let actor = user.actor();
    match ctx
        .store(move |s| faces::remove(s.conn_mut(), ResidentId(id), &actor))
        .await?
    {
        Ok(n) => ctx.flash(
            true,
            format!(
                "{} {n} {}",
                ctx.t("已删除", "Deleted"),
                ctx.t("张人脸", "face(s)")
            ),
        ),
        Err(e) => ctx.flash(false, format!("{e:#}")),
    }
    Ok(see_other(&format!("/residents/{id}/face")))
}
