//! Visitor passes: issue one for a resident's guest (the guard at the gate or
//! the office), print it with its PIN and QR code, revoke it. The PIN exists
//! in clear only on the printable page answered to the issuing post.

use axum::extract::Path;
use chrono::Utc;
use maud::html;
use serde::Deserialize;

use crate::console::auth::Perm;
use crate::console::layout::{self, csrf};
use crate::console::qr;
use crate::console::web::{see_other, Ctx, Page, Posted};
use crate::domain::{GateId, PersonStatus, Phone, Plate, ResidentId};
use crate::enrol::dates::parse_duration;
use crate::store::addresses::AddressPrefix;
use crate::store::people::{self, Search};
use crate::store::visitors::{self, NewPass, PassId, VisitorPass};
use crate::store::Store;

/// How long a pass may be issued for, from now.
const DURATIONS: [&str; 6] = ["2h", "4h", "8h", "24h", "3d", "7d"];

fn pass_table(ctx: &Ctx, passes: &[VisitorPass], can_revoke: bool) -> maud::Markup {
    let l = ctx.lang;
    let offset = ctx.app.config.site.utc_offset_minutes;
    let now = Utc::now();
    let me = ctx.user.as_ref();
    html! {
        div.table-wrap {
            table id="pass-table" {
                thead { tr {
                    th { "ID" } th { (l.t("访客", "Visitor")) } th { (l.t("邀请人", "Host")) }
                    th { (l.t("车牌", "Plate")) } th { (l.t("门", "Gates")) }
                    th { (l.t("有效期", "Valid")) } th { (l.t("剩余次数", "Uses left")) } th { (l.t("状态", "State")) } th {}
                } }
                tbody {
                    @for p in passes {
                        tr {
                            td { (p.id) }
                            td { (p.visitor_name) }
                            td { (p.host) }
                            td { (p.plate.as_deref().unwrap_or("")) }
                            td { (p.gates.as_ref().map(|g| g.join(", ")).unwrap_or_else(|| l.t("全部", "all").into())) }
                            td { (layout::local_instant(p.valid_from, offset)) " – " (layout::local_instant(p.valid_until, offset)) }
                            td { (p.uses_left.map(|n| n.to_string()).unwrap_or_else(|| "∞".into())) }
                            td {
                                @if p.revoked { span.pill.bad { (l.t("已撤销", "revoked")) } }
                                @else if p.is_usable_at(now) { span.pill.good { (l.t("有效", "valid")) } }
                                @else { span.pill { (l.t("无效", "not usable")) } }
                            }
                            td {
                                @if let (true, false, Some(me)) = (can_revoke, p.revoked, me) {
                                    form.inline method="post" action=(format!("/visitors/{}/revoke", p.id.0)) data-confirm=(l.t("撤销此通行证？", "Revoke this pass?")) {
                                        (csrf(me))
                                        button.link type="submit" { (l.t("撤销", "revoke")) }
                                    }
                                }
                            }
                        }
                    }
                    @if passes.is_empty() { tr { td colspan="9" .muted { (l.t("没有访客通行证。", "No visitor pass.")) } } }
                }
            }
        }
    }
}

#[derive(Deserialize, Default, Clone)]
pub struct PassForm {
    #[serde(default)]
    host: String,
    #[serde(default)]
    visitor_name: String,
    #[serde(default)]
    phone: String,
    #[serde(default)]
    plate: String,
    #[serde(default)]
    valid_for: String,
    #[serde(default)]
    uses: String,
}

fn issue_form(ctx: &Ctx, f: &PassForm, checked: &[String], problems: &[String]) -> maud::Markup {
    let l = ctx.lang;
    let Some(me) = ctx.user.as_ref() else {
        return html! {};
    };
    let durations: Vec<(String, String)> = DURATIONS
        .iter()
        .map(|d| {
            (
                d.to_string(),
                d.replace('h', l.t(" 小时", "h"))
                    .replace('d', l.t(" 天", " days")),
            )
        })
        .collect();
    html! {
        (layout::problems(problems))
        section.box {
            form.grid method="post" action="/visitors" id="pass-form" {
                (csrf(me))
                (layout::input(l.t("邀请人（住户 ID 或地址）", "Host (resident ID or address)"), "host", &f.host, "text", Some("R12 / 3-2-501")))
                (layout::input(l.t("访客姓名", "Visitor's name"), "visitor_name", &f.visitor_name, "text", None))
                (layout::input(l.t("访客手机（可选）", "Visitor's mobile (optional)"), "phone", &f.phone, "tel", None))
                (layout::input(l.t("访客车牌（可选）", "Visitor's plate (optional)"), "plate", &f.plate, "text", None))
                (layout::select(l.t("有效时长（从现在起）", "Valid for (from now)"), "valid_for", &durations, if f.valid_for.is_empty() { "4h" } else { &f.valid_for }))
                (layout::input(l.t("可用次数（空 = 不限）", "Uses (empty = unlimited)"), "uses", &f.uses, "number", None))
                fieldset {
                    legend { (l.t("可通行的门（不选 = 全部）", "Gates (none ticked = all)")) }
                    @for g in &ctx.app.config.gates {
                        label.check {
                            input type="checkbox" name="gates" value=(g.id) checked[checked.iter().any(|c| c == g.id.as_str())];
                            span { (g.name) }
                        }
                    }
                }
                div { button type="submit" id="pass-issue" { (l.t("发放并打印", "Issue and print")) } }
            }
        }
    }
}

pub async fn list(ctx: Ctx) -> Page {
    let me = ctx.need(Perm::Visitors)?;
    let passes = ctx
        .read(|conn| visitors::list(conn, None))
        .await?
        .map_err(|e| ctx.internal(&e))?;
    let passes: Vec<VisitorPass> = passes.into_iter().take(200).collect();
    let l = ctx.lang;
    let body = html! {
        h1 { (l.t("访客通行证", "Visitor passes")) }
        h2 { (l.t("发放通行证", "Issue a pass")) }
        (issue_form(&ctx, &PassForm::default(), &[], &[]))
        h2 { (l.t("最近的通行证", "Recent passes")) }
        (pass_table(&ctx, &passes, me.may(Perm::Visitors)))
    };
    Ok(layout::page(&ctx, l.t("访客", "Visitors"), body))
}

/// The one active resident a host field names (`R12`, or an address where
/// exactly one active resident lives). Reads are audited by `people::search`.
fn find_host(store: &Store, actor: &str, host: &str) -> anyhow::Result<ResidentId> {
    let host = host.trim();
    if let Ok(id) = host.parse::<ResidentId>() {
        return Ok(id);
    }
    let prefix: AddressPrefix = host.parse().map_err(|e: String| {
        anyhow::anyhow!("host: {e}; enter a resident ID (R12) or an address (3-2-501)")
    })?;
    let found = people::search(
        store,
        actor,
        &Search {
            address: Some(prefix),
            status: Some(PersonStatus::Active),
            limit: Some(20),
            ..Search::default()
        },
    )?;
    match found.as_slice() {
        [one] => Ok(one.id),
        [] => anyhow::bail!("host: no active resident at {host}"),
        many => anyhow::bail!(
            "host: {} active residents at {host} ({}); enter one resident ID",
            many.len(),
            many.iter()
                .map(|p| format!("{} {}", p.id, crate::domain::masked_name(&p.name)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

pub async fn issue(
    Posted {
        ctx,
        user,
        form,
        pairs,
    }: Posted<PassForm>,
) -> Page {
    ctx.need(Perm::Visitors)?;
    let l = ctx.lang;
    let checked: Vec<String> = pairs
        .iter()
        .filter(|(k, _)| k == "gates")
        .map(|(_, v)| v.clone())
        .collect();
    let title = l.t("访客通行证", "Visitor passes");
    let again = |problems: Vec<String>| {
        let body = html! { h1 { (title) } (issue_form(&ctx, &form, &checked, &problems)) };
        let mut r = layout::page(&ctx, title, body);
        *r.status_mut() = axum::http::StatusCode::UNPROCESSABLE_ENTITY;
        r
    };
    let mut problems = Vec::new();
    let phone = match form.phone.trim() {
        "" => None,
        s => s.parse::<Phone>().map_err(|e| problems.push(e)).ok(),
    };
    let plate = match form.plate.trim() {
        "" => None,
        s => s.parse::<Plate>().map_err(|e| problems.push(e)).ok(),
    };
    let uses = match form.uses.trim() {
        "" => None,
        s => s
            .parse::<u32>()
            .map_err(|_| problems.push(format!("uses {s:?}: expected a whole number")))
            .ok(),
    };
    let duration = parse_duration(if form.valid_for.is_empty() {
        "4h"
    } else {
        &form.valid_for
    })
    .map_err(|e| problems.push(e))
    .ok();
    let mut gates = Vec::new();
    for g in &checked {
        match g.parse::<GateId>() {
            Ok(g) if ctx.app.config.gate(&g).is_some() => gates.push(g),
            _ => problems.push(format!("gate {g:?} is not configured")),
        }
    }
    let (Some(duration), true) = (duration, problems.is_empty()) else {
        return Ok(again(problems));
    };
    let Ok(duration) = chrono::Duration::from_std(duration) else {
        return Ok(again(vec!["the duration is too long".into()]));
    };
    let now = Utc::now();
    let actor = user.actor();
    let site = ctx.app.config.site.id.clone();
    let pins = visitors::PinLength::from_config(&ctx.app.config.access);
    let (host, name) = (form.host.clone(), form.visitor_name.clone());
    let issued = ctx
        .store(move |s| {
            let host = find_host(s, &actor, &host)?;
            let new = NewPass {
                host,
                visitor_name: name,
                phone,
                plate,
                gates: (!gates.is_empty()).then_some(gates),
                valid_from: now,
                valid_until: now + duration,
                uses,
            };
            visitors::issue_with(s, &actor, &new, &site, pins)
        })
        .await?;
    let issued = match issued {
        Ok(i) => i,
        Err(e) => return Ok(again(vec![format!("{e:#}")])),
    };
    let svg = qr::svg(&issued.qr_payload).map_err(|e| ctx.internal(&e))?;
    let offset = ctx.app.config.site.utc_offset_minutes;
    let p = &issued.pass;
    let gate_names: Vec<String> = match &p.gates {
        Some(ids) => ids
            .iter()
            .map(|id| {
                ctx.app
                    .config
                    .gates
                    .iter()
                    .find(|g| g.id.as_str() == id)
                    .map(|g| g.name.clone())
                    .unwrap_or_else(|| id.clone())
            })
            .collect(),
        None => vec![l.t("全部门", "every gate").to_string()],
    };
    let body = html! {
        div.pass id="pass" {
            h1 { (ctx.app.config.site.name) }
            p { (l.t("访客通行证", "Visitor pass")) " " (p.id) }
            p { strong { (p.visitor_name) } }
            div.qr { (layout::svg(svg)) }
            p { (l.t("密码", "PIN")) }
            p.pin id="pass-pin" { (issued.pin.as_str()) }
            p { (l.t("在门口键盘输入密码后按 #，或出示二维码。", "Type the PIN then # at the gate keypad, or show the QR code.")) }
            dl.facts {
                dt { (l.t("有效期", "Valid")) } dd { (layout::local_instant(p.valid_from, offset)) " – " (layout::local_instant(p.valid_until, offset)) }
                dt { (l.t("门", "Gates")) } dd { (gate_names.join(", ")) }
                dt { (l.t("次数", "Uses")) } dd { (p.uses_left.map(|n| n.to_string()).unwrap_or_else(|| l.t("不限", "unlimited").into())) }
                @if let Some(plate) = &p.plate { dt { (l.t("车牌", "Plate")) } dd { (plate) } }
            }
        }
        p.no-print {
            button type="button" data-print="1" { (l.t("打印", "Print")) }
            " "
            a href="/visitors" { (l.t("返回访客列表", "Back to visitor passes")) }
        }
        p.muted.no-print { (l.t("密码不会保存，离开此页后无法再次显示。", "The PIN is not stored; it cannot be shown again after you leave this page.")) }
    };
    Ok(layout::page(&ctx, l.t("访客通行证", "Visitor pass"), body))
}

pub async fn revoke(
    Path(id): Path<i64>,
    Posted { ctx, user, .. }: Posted<super::login::Nothing>,
) -> Page {
    ctx.need(Perm::Visitors)?;
    let actor = user.actor();
    match ctx
        .store(move |s| visitors::revoke(s, &actor, PassId(id)))
        .await?
    {
        Ok(()) => ctx.flash(
            true,
            format!("{} {}", ctx.t("已撤销", "Revoked"), PassId(id)),
        ),
        Err(e) => ctx.flash(false, format!("{e:#}")),
    }
    Ok(see_other("/visitors"))
}
