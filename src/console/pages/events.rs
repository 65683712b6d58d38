//! The event log in the console: live events (server-sent events from the
//! daemon's broadcast of stored events), opening a gate by hand, the
//! entry-log search with its CSV export, and the audit log.

use std::convert::Infallible;
use std::time::{Duration, Instant};

use axum::extract::Query;
use axum::http::header;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::IntoResponse;
use chrono::{DateTime, FixedOffset, NaiveDate, TimeZone, Utc};
use futures_util::Stream;
use maud::{html, Markup};
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;

use crate::console::auth::Perm;
use crate::console::i18n::Lang;
use crate::console::layout::{self, csrf};
use crate::console::web::{see_other, Ctx, Fail, Page, Posted};
use crate::domain::GateId;
use crate::store::console::{audit_rows, AuditFilter};
use crate::store::events::{self, AccessResult, EventFilter, EventKind, EventRecord};
use crate::store::Store;

/// Rows the live page starts with.
const LIVE_ROWS: usize = 50;
/// Rows an entry-log search shows (the CSV export has [`CSV_ROWS`]).
const LOG_ROWS: u32 = 1000;
const CSV_ROWS: u32 = 100_000;
/// How often an idle live stream checks that its session is still alive.
const STREAM_CHECK: Duration = Duration::from_secs(20);

fn gate_name(ctx: &Ctx, id: &str) -> String {
    ctx.app
        .config
        .gates
        .iter()
        .find(|g| g.id.as_str() == id)
        .map(|g| g.name.clone())
        .unwrap_or_else(|| id.to_string())
}

/// One event as a table row (the live page, its stream and the log search).
pub fn event_row(ctx: &Ctx, e: &EventRecord, link_residents: bool) -> Markup {
    let l = ctx.lang;
    let offset = ctx.app.config.site.utc_offset_minutes;
    let class = match (e.kind, e.result) {
        (_, Some(AccessResult::Granted)) => "granted",
        (_, Some(AccessResult::Denied)) => "denied",
        (EventKind::Alarm, None) => "alarm",
        _ => "device",
    };
    let credential = match (&e.credential_kind, &e.credential_masked) {
        (Some(k), Some(m)) => format!("{} {m}", l.credential(k)),
        (Some(k), None) => l.credential(k),
        _ => String::new(),
    };
    let result = match e.result {
        Some(r) => l.result(r).to_string(),
        None => l.event_kind(e.kind).to_string(),
    };
    html! {
        tr class=(class) data-seq=(e.seq) data-result=(e.result.map(|r| r.as_str()).unwrap_or(e.kind.as_str())) {
            td { (layout::local_time(&e.at, offset)) @if !e.clock_synced { span title=(l.t("时钟未同步", "clock not synchronised")) { "?" } } }
            td { (e.gate.as_deref().map(|g| gate_name(ctx, g)).unwrap_or_default()) }
            td { (credential) }
            td {
                @match (e.subject_id, &e.subject_name) {
                    (Some(id), name) if link_residents => a href=(format!("/residents/{id}")) { "R" (id) " " (name.as_deref().unwrap_or("")) },
                    (Some(id), name) => { "R" (id) " " (name.as_deref().unwrap_or("")) },
                    (None, Some(name)) => { (name) },
                    (None, None) => {},
                }
            }
            td.result { (result) }
            td { (e.reason.as_deref().map(|r| l.reason(r)).unwrap_or_default()) }
        }
    }
}

fn event_head(l: Lang) -> Markup {
    html! {
        thead { tr {
            th { (l.t("时间", "Time")) } th { (l.t("门", "Gate")) } th { (l.t("凭证", "Credential")) }
            th { (l.t("人员", "Person")) } th { (l.t("结果", "Result")) } th { (l.t("原因", "Reason")) }
        } }
    }
}

pub async fn live(ctx: Ctx) -> Page {
    let me = ctx.need(Perm::LiveEvents)?;
    let since = Utc::now() - chrono::Duration::hours(24);
    let recent = ctx
        .read(move |conn| {
            events::query(
                conn,
                &EventFilter {
                    since: Some(since),
                    ..EventFilter::default()
                },
            )
        })
        .await?
        .map_err(|e| ctx.internal(&e))?;
    let l = ctx.lang;
    let link = me.may(Perm::Register);
    let gates: Vec<(String, String)> = ctx
        .app
        .config
        .gates
        .iter()
        .map(|g| (g.id.to_string(), g.name.clone()))
        .collect();
    let body = html! {
        h1 { (l.t("实时通行", "Live events")) " " span.dot id="live-dot" title=(l.t("实时连接", "live connection")) {} }
        @if me.may(Perm::OpenGate) {
            section.box.no-print {
                form.row method="post" action="/gates/open" id="open-form" {
                    (csrf(&me))
                    (layout::select(l.t("门", "Gate"), "gate", &gates, ""))
                    (layout::input(l.t("开门原因（必填，记入审计）", "Reason (required, audited)"), "reason", "", "text", None))
                    button type="submit" { (l.t("开门", "Open")) }
                }
            }
        }
        div.table-wrap {
            table {
                (event_head(l))
                tbody id="live-rows" data-stream="/live/stream" {
                    @for e in recent.iter().rev().take(LIVE_ROWS) { (event_row(&ctx, e, link)) }
                    @if recent.is_empty() {
                        tr id="live-empty" { td colspan="6" .muted { (l.t("24 小时内没有事件，新事件会自动出现。", "No event in the last 24 hours; new ones appear here.")) } }
                    }
                }
            }
        }
    };
    Ok(layout::page(&ctx, l.t("实时", "Live"), body))
}

pub async fn stream(ctx: Ctx) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, Fail> {
    let me = ctx.need(Perm::LiveEvents)?;
    let link = me.may(Perm::Register);
    let rx = ctx.app.handle.events();
    let stop = ctx.app.stopping.subscribe();
    let stream = futures_util::stream::unfold(
        (rx, stop, ctx, me.key),
        move |(mut rx, mut stop, ctx, key)| async move {
            loop {
                if *stop.borrow() {
                    return None;
                }
                let next = tokio::select! {
                    r = tokio::time::timeout(STREAM_CHECK, rx.recv()) => r,
                    _ = stop.changed() => return None,
                };
                if !ctx.app.sessions.is_alive(&key, Instant::now()) {
                    return None;
                }
                match next {
                    Err(_) => continue,
                    Ok(Err(RecvError::Lagged(_))) => continue,
                    Ok(Err(RecvError::Closed)) => return None,
                    Ok(Ok(e)) => {
                        let row = event_row(&ctx, &e, link)
                            .into_string()
                            .replace(['\r', '\n'], " ");
                        let event = Event::default()
                            .event("event")
                            .id(e.seq.to_string())
                            .data(row);
                        return Some((Ok(event), (rx, stop, ctx, key)));
                    }
                }
            }
        },
    );
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

#[derive(Deserialize)]
pub struct OpenForm {
    gate: String,
    #[serde(default)]
    reason: String,
}

pub async fn open_gate(
    Posted {
        ctx, user, form, ..
    }: Posted<OpenForm>,
) -> Page {
    ctx.need(Perm::OpenGate)?;
    let gate: GateId = form.gate.parse().map_err(|e: String| ctx.bad_request(e))?;
    if form.reason.trim().is_empty() {
        ctx.flash(
            false,
            ctx.t("开门需要填写原因。", "A manual open needs a reason."),
        );
        return Ok(see_other("/live"));
    }
    match ctx
        .app
        .handle
        .open(&gate, &user.actor(), form.reason.trim())
        .await
    {
        Ok(p) => {
            let granted = p.view.result == AccessResult::Granted;
            ctx.flash(
                granted,
                format!(
                    "{}: {}",
                    gate_name(&ctx, gate.as_str()),
                    ctx.lang.result(p.view.result)
                ),
            )
        }
        Err(e) => ctx.flash(false, format!("{e:#}")),
    }
    Ok(see_other("/live"))
}

#[derive(Deserialize, Default, Clone)]
pub struct LogQuery {
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    gate: String,
    #[serde(default)]
    result: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    resident: String,
}

fn offset(ctx: &Ctx) -> FixedOffset {
    ctx.app.config.site.utc_offset()
}

/// Local midnight starting `d`.
fn day_start(d: NaiveDate, offset: FixedOffset) -> Option<DateTime<Utc>> {
    offset
        .from_local_datetime(&d.and_hms_opt(0, 0, 0)?)
        .single()
        .map(|t| t.with_timezone(&Utc))
}

fn today(offset: FixedOffset) -> NaiveDate {
    Utc::now().with_timezone(&offset).date_naive()
}

/// The filter a log query asks for (`to` is inclusive: up to the end of that day).
pub fn log_filter(q: &LogQuery, offset: FixedOffset, limit: u32) -> Result<EventFilter, String> {
    let date = |s: &str| -> Result<Option<NaiveDate>, String> {
        match s.trim() {
            "" => Ok(None),
            s => crate::enrol::dates::parse_date(s).map(Some),
        }
    };
    let from = date(&q.from)?.unwrap_or_else(|| today(offset));
    let to = date(&q.to)?;
    let since = day_start(from, offset);
    let until = match to {
        Some(d) => day_start(d.succ_opt().ok_or("date out of range")?, offset),
        None => None,
    };
    let gate = match q.gate.trim() {
        "" => None,
        g => Some(g.parse::<GateId>()?.to_string()),
    };
    let result = match q.result.as_str() {
        "" => None,
        "granted" => Some(AccessResult::Granted),
        "denied" => Some(AccessResult::Denied),
        other => return Err(format!("unknown result {other:?}")),
    };
    let kind = match q.kind.as_str() {
        "" => None,
        "access" => Some(EventKind::Access),
        "alarm" => Some(EventKind::Alarm),
        "device" => Some(EventKind::Device),
        other => return Err(format!("unknown kind {other:?}")),
    };
    let subject_id = match q.resident.trim() {
        "" => None,
        r => Some(r.parse::<crate::domain::ResidentId>()?.0),
    };
    Ok(EventFilter {
        since,
        until,
        gate,
        subject_id,
        result,
        kind,
        credential_kind: None,
        after_seq: None,
        limit: Some(limit),
        newest_first: false,
    })
}

/// Runs an audited event query (events name residents, masked: who looked is recorded).
async fn query_audited(
    ctx: &Ctx,
    actor: String,
    action: &'static str,
    filter: EventFilter,
) -> Result<Vec<EventRecord>, Fail> {
    // Who looked is recorded on the writer (one short write); the query
    // itself, up to an export's 100,000 rows, runs on a read-only connection.
    let detail = serde_json::to_value(&filter).map_err(|e| ctx.internal(&e.into()))?;
    ctx.store(move |s| Store::audit(s.conn(), &actor, action, None, Some(&detail)))
        .await?
        .map_err(|e| ctx.internal(&e))?;
    ctx.read(move |conn| events::query(conn, &filter))
        .await?
        .map_err(|e| ctx.internal(&e))
}

pub async fn log(ctx: Ctx, Query(q): Query<LogQuery>) -> Page {
    let me = ctx.need(Perm::Logs)?;
    let l = ctx.lang;
    let off = offset(&ctx);
    let (rows, problem) = match log_filter(&q, off, LOG_ROWS) {
        Ok(mut filter) => (
            {
                // The page shows the latest matches; the CSV export has them all, in order.
                filter.newest_first = true;
                query_audited(&ctx, me.actor(), "log.query", filter).await?
            },
            None,
        ),
        Err(e) => (Vec::new(), Some(e)),
    };
    let from = if q.from.is_empty() {
        today(off).to_string()
    } else {
        q.from.clone()
    };
    let mut gates = vec![(String::new(), l.t("全部", "all").to_string())];
    gates.extend(
        ctx.app
            .config
            .gates
            .iter()
            .map(|g| (g.id.to_string(), g.name.clone())),
    );
    let results = [
        ("", l.t("全部", "all")),
        ("granted", l.t("通过", "granted")),
        ("denied", l.t("拒绝", "denied")),
    ]
    .map(|(v, t)| (v.to_string(), t.to_string()));
    let kinds = [
        ("", l.t("全部", "all")),
        ("access", l.t("通行", "access")),
        ("alarm", l.t("报警", "alarm")),
        ("device", l.t("设备", "device")),
    ]
    .map(|(v, t)| (v.to_string(), t.to_string()));
    let csv_query = serde_urlencoded::to_string([
        ("from", from.as_str()),
        ("to", q.to.as_str()),
        ("gate", q.gate.as_str()),
        ("result", q.result.as_str()),
        ("kind", q.kind.as_str()),
        ("resident", q.resident.as_str()),
    ])
    .unwrap_or_default();
    let body = html! {
        h1 { (l.t("通行记录", "Entry log")) }
        section.box.no-print {
            form.grid method="get" action="/log" id="log-form" {
                (layout::input(l.t("从（日期）", "From (date)"), "from", &from, "date", None))
                (layout::input(l.t("到（日期，含）", "To (date, inclusive)"), "to", &q.to, "date", None))
                (layout::select(l.t("门", "Gate"), "gate", &gates, &q.gate))
                (layout::select(l.t("结果", "Result"), "result", &results, &q.result))
                (layout::select(l.t("类型", "Kind"), "kind", &kinds, &q.kind))
                (layout::input(l.t("住户 ID", "Resident ID"), "resident", &q.resident, "text", Some("R12")))
                div {
                    button type="submit" { (l.t("查询", "Search")) } " "
                    a.button href=(format!("/log.csv?{csv_query}")) id="csv-export" { (l.t("导出 CSV", "Export CSV")) }
                }
            }
        }
        @if let Some(p) = &problem { p.error { (p) } }
        div.table-wrap {
            table id="log-table" {
                (event_head(l))
                tbody {
                    @for e in &rows { (event_row(&ctx, e, me.may(Perm::Register))) }
                    @if rows.is_empty() { tr { td colspan="6" .muted { (l.t("没有符合条件的记录。", "No event matches.")) } } }
                }
            }
        }
        p.muted { (rows.len()) " " (l.t("条", "event(s)"))
            @if rows.len() as u32 >= LOG_ROWS { " · " (l.t("只显示最近 1000 条；导出 CSV 可得全部。", "only the latest 1000 are shown; the CSV export has them all.")) } }
    };
    Ok(layout::page(&ctx, l.t("通行记录", "Entry log"), body))
}

pub async fn log_csv(ctx: Ctx, Query(q): Query<LogQuery>) -> Page {
    let me = ctx.need(Perm::Logs)?;
    let off = offset(&ctx);
    let filter = log_filter(&q, off, CSV_ROWS).map_err(|e| ctx.bad_request(e))?;
    let rows = query_audited(&ctx, me.actor(), "log.export", filter).await?;
    let bytes =
        events_csv(&rows, ctx.app.config.site.utc_offset_minutes).map_err(|e| ctx.internal(&e))?;
    let name = format!("gatehouse-events-{}.csv", today(off).format("%Y%m%d"));
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
        bytes,
    )
        .into_response())
}

/// The CSV export: UTF-8 with a BOM (so Excel on a Chinese Windows reads it),
/// the same columns as `gatehouse log --format csv` plus local time.
pub fn events_csv(rows: &[EventRecord], offset_minutes: i32) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::from(&b"\xEF\xBB\xBF"[..]);
    {
        let mut w = csv::Writer::from_writer(&mut out);
        // The record's own row, with the local time after `at`.
        let mut header = events::CSV_COLUMNS.to_vec();
        header.insert(3, "local_time");
        w.write_record(&header)?;
        for e in rows {
            let mut row = e.csv_row().to_vec();
            row.insert(3, layout::local_time(&e.at, offset_minutes));
            w.write_record(&row)?;
        }
        w.flush()?;
    }
    Ok(out)
}

#[derive(Deserialize, Default)]
pub struct AuditQuery {
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    actor: String,
    #[serde(default)]
    action: String,
}

pub async fn audit(ctx: Ctx, Query(q): Query<AuditQuery>) -> Page {
    ctx.need(Perm::Audit)?;
    let l = ctx.lang;
    let off = offset(&ctx);
    let as_log = LogQuery {
        from: q.from.clone(),
        to: q.to.clone(),
        ..LogQuery::default()
    };
    let (rows, problem) = match log_filter(&as_log, off, 500) {
        Ok(f) => {
            let filter = AuditFilter {
                // The audit view starts a week back unless told otherwise.
                since: if q.from.is_empty() {
                    Some(Utc::now() - chrono::Duration::days(7))
                } else {
                    f.since
                },
                until: f.until,
                actor: Some(q.actor.clone()),
                action: Some(q.action.clone()),
                limit: Some(500),
            };
            let rows = ctx
                .read(move |conn| audit_rows(conn, &filter))
                .await?
                .map_err(|e| ctx.internal(&e))?;
            (rows, None)
        }
        Err(e) => (Vec::new(), Some(e)),
    };
    let offset_minutes = ctx.app.config.site.utc_offset_minutes;
    let body = html! {
        h1 { (l.t("审计日志", "Audit log")) }
        p.muted { (l.t("谁在何时修改或查看了什么（最近 500 条）。", "Who changed or read what, and when (latest 500).")) }
        section.box {
            form.grid method="get" action="/audit" {
                (layout::input(l.t("从（日期，默认 7 天前）", "From (date, default a week ago)"), "from", &q.from, "date", None))
                (layout::input(l.t("到（日期，含）", "To (date, inclusive)"), "to", &q.to, "date", None))
                (layout::input(l.t("操作人包含", "Actor contains"), "actor", &q.actor, "text", Some("console:wang")))
                (layout::input(l.t("操作以此开头", "Action starts with"), "action", &q.action, "text", Some("person.")))
                div { button type="submit" { (l.t("查询", "Search")) } }
            }
        }
        @if let Some(p) = &problem { p.error { (p) } }
        div.table-wrap {
            table id="audit-table" {
                thead { tr { th { (l.t("时间", "Time")) } th { (l.t("操作人", "Actor")) } th { (l.t("操作", "Action")) } th { (l.t("对象", "Subject")) } th { (l.t("详情", "Detail")) } } }
                tbody {
                    @for r in &rows {
                        tr {
                            td { (layout::local_time(&r.at, offset_minutes)) }
                            td { (r.actor) } td { (r.action) } td { (r.subject.as_deref().unwrap_or("")) }
                            td.muted { (r.detail.as_deref().unwrap_or("")) }
                        }
                    }
                    @if rows.is_empty() { tr { td colspan="5" .muted { (l.t("没有记录。", "Nothing recorded.")) } } }
                }
            }
        }
    };
    Ok(layout::page(&ctx, l.t("审计", "Audit"), body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_dates_are_local_days_with_an_inclusive_end() {
        let cst = FixedOffset::east_opt(8 * 3600).unwrap();
        let q = LogQuery {
            from: "2025-03-12".into(),
            to: "2025-03-12".into(),
            gate: "east".into(),
            result: "denied".into(),
            resident: "R7".into(),
            ..LogQuery::default()
        };
        let f = log_filter(&q, cst, 10).unwrap();
        assert_eq!(
            f.since,
            Some(Utc.with_ymd_and_hms(2025, 3, 11, 16, 0, 0).unwrap())
        );
        assert_eq!(
            f.until,
            Some(Utc.with_ymd_and_hms(2025, 3, 12, 16, 0, 0).unwrap())
        );
        assert_eq!(
            (f.gate.as_deref(), f.result, f.subject_id),
            (Some("east"), Some(AccessResult::Denied), Some(7))
        );
        let bad = LogQuery {
            from: "12/03/2025".into(),
            ..LogQuery::default()
        };
        assert!(log_filter(&bad, cst, 10)
            .unwrap_err()
            .contains("not a date"));
    }

    #[test]
    fn csv_export_has_a_bom_and_quotes_where_needed() {
        let e = EventRecord {
            seq: 3,
            id: "id-3".into(),
            at: "2025-03-12T02:00:00.000Z".into(),
            clock_synced: true,
            kind: EventKind::Access,
            gate: Some("east".into()),
            direction: Some("in".into()),
            credential_kind: Some("card".into()),
            credential_masked: Some("10:***45".into()),
            subject_id: Some(1),
            subject_name: Some("张*".into()),
            result: Some(AccessResult::Granted),
            reason: Some("a, b".into()),
            score: None,
            snapshot: None,
            detail: None,
            prev_hash: vec![],
            hash: vec![],
        };
        let bytes = events_csv(&[e], 480).unwrap();
        assert!(bytes.starts_with(b"\xEF\xBB\xBFseq,id,at,local_time"));
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.contains("2025-03-12 10:00:00"), "{text}");
        assert!(text.contains("张*,granted,\"a, b\""), "{text}");
    }
}
