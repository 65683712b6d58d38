//! Unregistered people who keep coming back (`store::strangers`), with their
//! latest snapshots: the property manager registers them, or tells the
//! community police. Looking is audited, and so is every snapshot shown.

use axum::extract::Path;
use axum::http::{header, HeaderValue};
use axum::response::IntoResponse;
use maud::html;

use crate::console::auth::Perm;
use crate::console::layout;
use crate::console::web::{Ctx, Page};
use crate::store::{strangers, Store};

/// Strangers seen on at least this many days are listed.
const MIN_DAYS: u32 = 2;

pub async fn list(ctx: Ctx) -> Page {
    let me = ctx.need(Perm::Register)?;
    let days = ctx.app.config.face.stranger_days;
    let report_after = ctx.app.config.face.recurring_stranger_days;
    let actor = me.actor();
    let found = ctx
        .store(move |s| {
            let since = chrono::Utc::now() - chrono::Duration::days(i64::from(days));
            let found = strangers::list(s.conn(), since, MIN_DAYS)?;
            Store::audit(
                s.conn(),
                &actor,
                "console.strangers",
                None,
                Some(&serde_json::json!({ "days": days, "found": found.len() })),
            )?;
            Ok(found)
        })
        .await?
        .map_err(|e| ctx.internal(&e))?;
    let l = ctx.lang;
    let offset = ctx.app.config.site.utc_offset_minutes;
    let intro = match l {
        crate::console::i18n::Lang::Zh => format!("最近 {days} 天内在 {MIN_DAYS} 天以上出现、但不在住户登记中的人脸。满 {report_after} 天时已向派出所报警。请核实后为其登记，或联系社区民警。"),
        crate::console::i18n::Lang::En => format!("Faces not in the register seen on {MIN_DAYS} or more days in the last {days} days. At {report_after} days the station was alerted. Register them once checked, or tell the community police."),
    };
    let body = html! {
        h1 { (l.t("常来的未登记人员", "Unregistered regulars")) }
        p.muted { (intro) }
        div.table-wrap {
            table id="stranger-table" {
                thead { tr {
                    th { (l.t("编号", "Stranger")) } th { (l.t("天数", "Days")) } th { (l.t("次数", "Sightings")) }
                    th { (l.t("首次", "First seen")) } th { (l.t("最近", "Last seen")) } th { (l.t("门", "Gates")) }
                    th { (l.t("照片", "Snapshots")) }
                } }
                tbody {
                    @for s in &found {
                        tr {
                            td { (s.stranger) }
                            td { @if s.days >= report_after { span.pill.bad { (s.days) } } @else { (s.days) } }
                            td { (s.sightings) }
                            td { (layout::local_time(&s.first_seen, offset)) }
                            td { (layout::local_time(&s.last_seen, offset)) }
                            td { (s.gates.join(", ")) }
                            td {
                                @for snap in &s.snapshots {
                                    img.snapshot src=(format!("/snapshots/{snap}")) alt=(l.t("抓拍", "snapshot")) height="96";
                                    " "
                                }
                            }
                        }
                    }
                    @if found.is_empty() {
                        tr { td colspan="7" .muted { (l.t("没有。", "None.")) } }
                    }
                }
            }
        }
    };
    Ok(layout::page(&ctx, l.t("未登记人员", "Strangers"), body))
}

/// A snapshot file name as the gateway makes them (`face-east-0190….jpg`):
/// nothing that could leave the snapshots folder.
fn valid_name(name: &str) -> bool {
    name.len() <= 128
        && name.ends_with(".jpg")
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

/// `GET /snapshots/{name}`: one camera snapshot, audited.
pub async fn snapshot(ctx: Ctx, Path(name): Path<String>) -> Page {
    let me = ctx.need(Perm::Register)?;
    if !valid_name(&name) {
        return Err(ctx.not_found());
    }
    let path = ctx.app.config.data_dir().join("snapshots").join(&name);
    let Ok(jpeg) = tokio::fs::read(&path).await else {
        return Err(ctx.not_found());
    };
    let actor = me.actor();
    ctx.store(move |s| {
        Store::audit(
            s.conn(),
            &actor,
            "console.snapshot",
            None,
            Some(&serde_json::json!({ "snapshot": name })),
        )
    })
    .await?
    .map_err(|e| ctx.internal(&e))?;
    let mut r = jpeg.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("image/jpeg"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_jpeg_names_are_served() {
        assert!(valid_name("face-east-0190a1b2c3d4.jpg"));
        for bad in [
            "../gatehouse.db",
            "..jpg",
            "a/b.jpg",
            "face.png",
            "%2e%2e.jpg",
            ".hidden.jpg",
        ] {
            assert!(!valid_name(bad), "{bad}");
        }
    }
}
