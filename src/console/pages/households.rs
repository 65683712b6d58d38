//! Households at their standard addresses (一标三实's 标准地址 and 实有房屋),
//! and the vehicle register looked up by plate.

use axum::extract::Query;
use maud::html;
use serde::Deserialize;

use crate::console::auth::Perm;
use crate::console::layout::{self, csrf};
use crate::console::web::{see_other, Ctx, Page, Posted};
use crate::domain::{Plate, ResidentId};
use crate::store::addresses::{self, Address, HouseholdKind};
use crate::store::atomic::atomically;
use crate::store::people::{self, Search};
use crate::store::vehicles::{self, VehicleInfo};

pub async fn list(ctx: Ctx) -> Page {
    let me = ctx.need(Perm::Register)?;
    let rows = ctx
        .read(addresses::households)
        .await?
        .map_err(|e| ctx.internal(&e))?;
    let l = ctx.lang;
    let kinds: Vec<(String, String)> = HouseholdKind::ALL
        .iter()
        .map(|k| (k.as_str().to_string(), l.household(*k).to_string()))
        .collect();
    let body = html! {
        h1 { (l.t("房屋与住户", "Households")) }
        p.muted { (l.t(
            "房屋随住户登记自动建立（楼栋-单元-房号）。",
            "Households are created with the residents who live there (building-unit-room)."
        )) }
        p.muted { (l.t(
            "“户号+刷脸”门口：住户在键盘上输入户号（1–5 位数字）后按 #，或按 楼栋*单元*房号#（如 3*2*501#），再看摄像头。",
            "Household + face gates: the resident keys the household code (1 to 5 digits) then #, or building*unit*room# (e.g. 3*2*501#), then looks at the camera."
        )) }
        div.table-wrap {
            table {
                thead { tr {
                    th { (l.t("地址", "Address")) } th { (l.t("类型", "Kind")) }
                    th { (l.t("人数", "Residents")) } th { (l.t("修改类型", "Change kind")) }
                    th { (l.t("门口户号", "Gate household code")) }
                } }
                tbody {
                    @for h in &rows {
                        tr {
                            td { a href=(format!("/residents?by=address&q={}", h.address)) { (h.address) } }
                            td { (l.household(h.kind)) }
                            td { (h.members) }
                            td {
                                form.inline method="post" action="/households/kind" {
                                    (csrf(&me))
                                    input type="hidden" name="address" value=(h.address);
                                    select name="kind" aria-label=(l.t("类型", "Kind")) {
                                        @for (v, t) in &kinds { option value=(v) selected[*v == h.kind.as_str()] { (t) } }
                                    }
                                    " "
                                    button.secondary type="submit" { (l.t("保存", "Save")) }
                                }
                            }
                            td {
                                form.inline method="post" action="/households/code" {
                                    (csrf(&me))
                                    input type="hidden" name="address" value=(h.address);
                                    input type="text" name="code" inputmode="numeric" pattern="[0-9]{0,5}" maxlength="5" size="6"
                                        aria-label=(l.t("门口户号", "Gate household code"))
                                        value=(h.code.as_deref().unwrap_or(""));
                                    " "
                                    button.secondary type="submit" { (l.t("保存", "Save")) }
                                }
                            }
                        }
                    }
                    @if rows.is_empty() { tr { td colspan="5" .muted { (l.t("还没有房屋。", "No household yet.")) } } }
                }
            }
        }
    };
    Ok(layout::page(&ctx, l.t("房屋", "Households"), body))
}

#[derive(Deserialize)]
pub struct KindForm {
    address: String,
    kind: String,
}

pub async fn set_kind(
    Posted {
        ctx, user, form, ..
    }: Posted<KindForm>,
) -> Page {
    ctx.need(Perm::Register)?;
    let address: Address = form
        .address
        .parse()
        .map_err(|e: String| ctx.bad_request(e))?;
    let kind: HouseholdKind = form.kind.parse().map_err(|e: String| ctx.bad_request(e))?;
    let actor = user.actor();
    let shown = address.to_string();
    // The register's own rule: the household at an address takes the given
    // kind (audited as household.update when it changes).
    let result = ctx
        .store(move |s| {
            atomically(s.conn(), |conn| {
                addresses::household_at(conn, &actor, &address, Some(kind), kind).map(|_| ())
            })
        })
        .await?;
    match result {
        Ok(()) => ctx.flash(true, format!("{shown}: {}", ctx.lang.household(kind))),
        Err(e) => ctx.flash(false, format!("{e:#}")),
    }
    Ok(see_other("/households"))
}

#[derive(Deserialize)]
pub struct CodeForm {
    address: String,
    #[serde(default)]
    code: String,
}

/// Assigns (or, empty, removes) the code keyed for a household at household gates.
pub async fn set_code(
    Posted {
        ctx, user, form, ..
    }: Posted<CodeForm>,
) -> Page {
    ctx.need(Perm::Register)?;
    let address: Address = form
        .address
        .parse()
        .map_err(|e: String| ctx.bad_request(e))?;
    let code = Some(form.code.trim().to_string()).filter(|c| !c.is_empty());
    let actor = user.actor();
    let shown = address.to_string();
    let set = code.clone();
    let result = ctx
        .store(move |s| {
            atomically(s.conn(), |conn| {
                addresses::set_household_code(conn, &actor, &address, set.as_deref()).map(|_| ())
            })
        })
        .await?;
    match (result, code) {
        (Ok(()), Some(code)) => ctx.flash(
            true,
            format!(
                "{shown}: {} {code}",
                ctx.t("门口户号", "gate household code")
            ),
        ),
        (Ok(()), None) => ctx.flash(
            true,
            format!(
                "{shown}: {}",
                ctx.t("已取消门口户号", "gate household code removed")
            ),
        ),
        (Err(e), _) => ctx.flash(false, format!("{e:#}")),
    }
    Ok(see_other("/households"))
}

#[derive(Deserialize, Default)]
pub struct VehicleQuery {
    #[serde(default)]
    plate: String,
}

pub async fn vehicles(ctx: Ctx, Query(q): Query<VehicleQuery>) -> Page {
    let me = ctx.need(Perm::Register)?;
    let l = ctx.lang;
    let mut problem = None;
    let mut found = None;
    if !q.plate.trim().is_empty() {
        match q.plate.parse::<Plate>() {
            Err(e) => problem = Some(e),
            Ok(plate) => {
                let actor = me.actor();
                let p = plate.clone();
                let rows = ctx
                    .store(move |s| {
                        let owner = vehicles::owner(s.conn(), &p)?;
                        let holders = match owner {
                            Some(_) => people::search(
                                s,
                                &actor,
                                &Search {
                                    plate: Some(p.clone()),
                                    ..Search::default()
                                },
                            )?,
                            None => Vec::new(),
                        };
                        let passes = crate::store::visitors::passes_for_plate(s.conn(), &p)?;
                        if !passes.is_empty() {
                            // The desk sees the visitor's name: who looked is recorded.
                            crate::store::Store::audit(
                                s.conn(),
                                &actor,
                                "visitor.read",
                                Some(p.as_str()),
                                Some(&serde_json::json!({ "by": "plate", "passes": passes.len() })),
                            )?;
                        }
                        Ok((holders, passes))
                    })
                    .await?
                    .map_err(|e| ctx.internal(&e))?;
                found = Some((plate, rows));
            }
        }
    }
    let body = html! {
        h1 { (l.t("车辆", "Vehicles")) }
        section.box {
            form.row method="get" action="/vehicles" {
                (layout::input(l.t("车牌", "Plate"), "plate", &q.plate, "search", None))
                button type="submit" { (l.t("查找", "Look up")) }
            }
        }
        @if let Some(p) = &problem { p.error { (p) } }
        @if let Some((plate, (holders, passes))) = &found {
            @if holders.is_empty() && passes.is_empty() {
                p { (plate.as_str()) " " (l.t("未登记。", "is not registered.")) }
            }
            @for h in holders {
                p { (plate.as_str()) " → " a href=(format!("/residents/{}", h.id.0)) { (h.id) " " (h.name) }
                    " " (h.address.as_ref().map(|a| a.to_string()).unwrap_or_default()) }
            }
            @for v in passes {
                p { (plate.as_str()) " → " (l.t("访客通行证", "visitor pass")) " " (v.id) " " (v.visitor_name) }
            }
        }
        h2 { (l.t("登记车辆", "Register a vehicle")) }
        section.box {
            form.row method="post" action="/vehicles/add" {
                (csrf(&me))
                (layout::input(l.t("车牌", "Plate"), "plate", "", "text", Some("川A12345")))
                (layout::input(l.t("车主（住户 ID）", "Owner (resident ID)"), "resident", "", "text", Some("R12")))
                (layout::input(l.t("车型", "Kind"), "kind", "", "text", None))
                (layout::input(l.t("颜色", "Colour"), "colour", "", "text", None))
                button type="submit" { (l.t("登记", "Add")) }
            }
        }
    };
    Ok(layout::page(&ctx, l.t("车辆", "Vehicles"), body))
}

#[derive(Deserialize)]
pub struct AddVehicle {
    plate: String,
    resident: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    colour: String,
}

pub async fn add_vehicle(
    Posted {
        ctx, user, form, ..
    }: Posted<AddVehicle>,
) -> Page {
    ctx.need(Perm::Register)?;
    let parsed = form
        .plate
        .parse::<Plate>()
        .and_then(|p| form.resident.parse::<ResidentId>().map(|r| (p, r)));
    let (plate, person) = match parsed {
        Ok(v) => v,
        Err(e) => {
            ctx.flash(false, e);
            return Ok(see_other("/vehicles"));
        }
    };
    let some = |s: &str| Some(s.trim().to_string()).filter(|s| !s.is_empty());
    let info = VehicleInfo {
        kind: some(&form.kind),
        colour: some(&form.colour),
    };
    let actor = user.actor();
    let shown = plate.as_str().to_string();
    match ctx
        .store(move |s| vehicles::add(s, &actor, person, &plate, &info))
        .await?
    {
        Ok(()) => {
            ctx.flash(
                true,
                format!(
                    "{} {shown} → {person}",
                    ctx.t("已登记车辆", "Added vehicle")
                ),
            );
            Ok(see_other(&format!(
                "/vehicles?plate={}",
                crate::console::web::urlencode(&shown)
            )))
        }
        Err(e) => {
            ctx.flash(false, format!("{e:#}"));
            Ok(see_other("/vehicles"))
        }
    }
}
