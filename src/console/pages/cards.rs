//! A resident's cards and vehicles. A card is assigned by presenting it at a
//! reader ("present the card at reader X now": the next frame that reader
//! reads is captured and assigned, no number typed), or typed by hand.

use axum::extract::Path;
use serde::Deserialize;

use super::residents::back_to;
use crate::console::auth::Perm;
use crate::console::web::{Page, Posted};
use crate::console::CARD_CAPTURE_TIMEOUT;
use crate::domain::{CardNumber, GateId, Plate, ResidentId};
use crate::store::cards;
use crate::store::people;
use crate::store::vehicles::{self, VehicleInfo};

#[derive(Deserialize)]
pub struct CaptureForm {
    gate: String,
}

pub async fn capture(
    Path(id): Path<i64>,
    Posted {
        ctx, user, form, ..
    }: Posted<CaptureForm>,
) -> Page {
    ctx.need(Perm::Register)?;
    let gate: GateId = form.gate.parse().map_err(|e: String| ctx.bad_request(e))?;
    let person = ResidentId(id);
    let exists = ctx
        .read(move |conn| people::get(conn, person).map(|_| ()))
        .await?;
    if exists.is_err() {
        return Err(ctx.not_found());
    }
    tracing::info!(gate = %gate, resident = %person, account = %user.name, "console: waiting for a card at reader {gate} for {person}");
    let captured = ctx
        .app
        .handle
        .capture_card(&gate, CARD_CAPTURE_TIMEOUT)
        .await;
    let captured = match captured {
        Ok(c) => c,
        Err(e) => {
            ctx.flash(
                false,
                format!("{}: {e:#}", ctx.t("未读到卡", "No card read")),
            );
            return Ok(back_to(id, "cards"));
        }
    };
    let format = Some(captured.format);
    let card = captured.card.clone();
    let actor = user.actor();
    let assigned = ctx
        .store(move |s| cards::assign(s, &actor, person, &card, format))
        .await?;
    match assigned {
        Ok(f) => ctx.flash(
            true,
            format!(
                "{} {} ({f}) {} {person}",
                ctx.t("已读到卡", "Read card"),
                captured.card.masked(),
                ctx.t("并分配给", "and assigned it to")
            ),
        ),
        Err(e) => ctx.flash(
            false,
            format!(
                "{} {}: {e:#}",
                ctx.t("读到卡", "Read card"),
                captured.card.masked()
            ),
        ),
    }
    Ok(back_to(id, "cards"))
}

#[derive(Deserialize)]
pub struct CardForm {
    card: String,
}

pub async fn add(
    Path(id): Path<i64>,
    Posted {
        ctx, user, form, ..
    }: Posted<CardForm>,
) -> Page {
    ctx.need(Perm::Register)?;
    let card: CardNumber = match form.card.parse() {
        Ok(c) => c,
        Err(e) => {
            ctx.flash(false, e);
            return Ok(back_to(id, "cards"));
        }
    };
    let actor = user.actor();
    let masked = card.masked();
    match ctx
        .store(move |s| cards::assign(s, &actor, ResidentId(id), &card, None))
        .await?
    {
        Ok(f) => ctx.flash(
            true,
            format!("{} {masked} ({f})", ctx.t("已分配卡", "Assigned card")),
        ),
        Err(e) => ctx.flash(false, format!("{e:#}")),
    }
    Ok(back_to(id, "cards"))
}

pub async fn revoke(
    Path(id): Path<i64>,
    Posted {
        ctx, user, form, ..
    }: Posted<CardForm>,
) -> Page {
    ctx.need(Perm::Register)?;
    let card: CardNumber = form.card.parse().map_err(|e: String| ctx.bad_request(e))?;
    let actor = user.actor();
    let masked = card.masked();
    match ctx.store(move |s| cards::revoke(s, &actor, &card)).await? {
        Ok(_) => ctx.flash(
            true,
            format!("{} {masked}", ctx.t("已收回卡", "Revoked card")),
        ),
        Err(e) => ctx.flash(false, format!("{e:#}")),
    }
    Ok(back_to(id, "cards"))
}

#[derive(Deserialize)]
pub struct VehicleForm {
    plate: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    colour: String,
}

fn some(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_string())
}

pub async fn add_vehicle(
    Path(id): Path<i64>,
    Posted {
        ctx, user, form, ..
    }: Posted<VehicleForm>,
) -> Page {
    ctx.need(Perm::Register)?;
    let plate: Plate = match form.plate.parse() {
        Ok(p) => p,
        Err(e) => {
            ctx.flash(false, e);
            return Ok(back_to(id, "vehicles"));
        }
    };
    let info = VehicleInfo {
        kind: some(&form.kind),
        colour: some(&form.colour),
    };
    let actor = user.actor();
    let shown = plate.to_string();
    match ctx
        .store(move |s| vehicles::add(s, &actor, ResidentId(id), &plate, &info))
        .await?
    {
        Ok(()) => ctx.flash(
            true,
            format!("{} {shown}", ctx.t("已登记车辆", "Added vehicle")),
        ),
        Err(e) => ctx.flash(false, format!("{e:#}")),
    }
    Ok(back_to(id, "vehicles"))
}

#[derive(Deserialize)]
pub struct PlateForm {
    plate: String,
}

pub async fn remove_vehicle(
    Path(id): Path<i64>,
    Posted {
        ctx, user, form, ..
    }: Posted<PlateForm>,
) -> Page {
    ctx.need(Perm::Register)?;
    let plate: Plate = form.plate.parse().map_err(|e: String| ctx.bad_request(e))?;
    let actor = user.actor();
    let shown = plate.to_string();
    match ctx
        .store(move |s| vehicles::remove(s, &actor, &plate))
        .await?
    {
        Ok(_) => ctx.flash(
            true,
            format!("{} {shown}", ctx.t("已删除车辆", "Removed vehicle")),
        ),
        Err(e) => ctx.flash(false, format!("{e:#}")),
    }
    Ok(back_to(id, "vehicles"))
}
