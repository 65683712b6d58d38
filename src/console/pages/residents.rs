//! Residents: search (name, address, card, plate), the record page, add,
//! edit, suspend / resume / move out, remove.

use axum::extract::{Path, Query};
use axum::response::Response;
use chrono::NaiveDate;
use maud::{html, Markup};
use serde::Deserialize;

use crate::console::auth::Perm;
use crate::console::i18n::Lang;
use crate::console::layout::{self, csrf};
use crate::console::web::{see_other, Ctx, Page, Posted};
use crate::domain::{
    CardNumber, IdDocument, IdKind, PersonStatus, Phone, Plate, ResidentId, ResidentRole,
    PLATE_EMBASSY, PLATE_PROVINCES,
};
use crate::enrol::dates::parse_date;
use crate::store::addresses::{Address, AddressPrefix, HouseholdKind};
use crate::store::people::{self, NewPerson, PersonDetail, PersonUpdate, Search};

/// Most rows a search shows.
const LIST_LIMIT: u32 = 200;

#[derive(Deserialize, Default)]
pub struct ListQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    by: String,
    #[serde(default)]
    status: String,
}

/// What a search box's text means.
#[derive(Debug)]
pub enum Wanted {
    All,
    Resident(ResidentId),
    Search(Box<Search>),
}

/// Reads the search box: `R12` opens a record; `10:12345` is a card, `川A12345`
/// a plate, `3-2-501` / `3-2` / `3栋` an address; anything else part of a name.
/// `by` forces one reading (`name`, `address`, `card`, `plate`).
pub fn interpret(q: &str, by: &str) -> Result<Wanted, String> {
    let q = q.trim();
    if q.is_empty() {
        return Ok(Wanted::All);
    }
    let name = || Search {
        name: Some(q.to_string()),
        ..Search::default()
    };
    let card = || -> Result<Search, String> {
        Ok(Search {
            card: Some(q.parse::<CardNumber>()?),
            ..Search::default()
        })
    };
    let plate = || -> Result<Search, String> {
        Ok(Search {
            plate: Some(q.parse::<Plate>()?),
            ..Search::default()
        })
    };
    let address = || -> Result<Search, String> {
        Ok(Search {
            address: Some(q.parse::<AddressPrefix>()?),
            ..Search::default()
        })
    };
    match by {
        "name" => return Ok(Wanted::Search(Box::new(name()))),
        "card" => return card().map(|s| Wanted::Search(Box::new(s))),
        "plate" => return plate().map(|s| Wanted::Search(Box::new(s))),
        "address" => return address().map(|s| Wanted::Search(Box::new(s))),
        _ => {}
    }
    if let Some(rest) = q.strip_prefix(['R', 'r']) {
        if !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()) {
            return q.parse().map(Wanted::Resident);
        }
    }
    if q.contains(':') {
        return card().map(|s| Wanted::Search(Box::new(s)));
    }
    let first = q.chars().next().unwrap_or(' ');
    if PLATE_PROVINCES.contains(first) || first == PLATE_EMBASSY {
        if let Ok(s) = plate() {
            return Ok(Wanted::Search(Box::new(s)));
        }
    }
    let written = ["栋", "号楼", "幢", "单元"].iter().any(|m| q.contains(m));
    if first.is_ascii_digit() || written {
        if let Ok(s) = address() {
            return Ok(Wanted::Search(Box::new(s)));
        }
    }
    Ok(Wanted::Search(Box::new(name())))
}

fn status_of(s: &str) -> Option<PersonStatus> {
    s.parse().ok()
}

pub async fn list(ctx: Ctx, Query(q): Query<ListQuery>) -> Page {
    let me = ctx.need(Perm::Register)?;
    let mut problems = Vec::new();
    let wanted = match interpret(&q.q, &q.by) {
        Ok(Wanted::Resident(id)) => return Ok(see_other(&format!("/residents/{}", id.0))),
        Ok(w) => Some(w),
        Err(e) => {
            problems.push(e);
            None
        }
    };
    let rows = match wanted {
        Some(w) => {
            let mut search = match w {
                Wanted::Search(s) => *s,
                _ => Search::default(),
            };
            search.status = status_of(&q.status);
            search.limit = Some(LIST_LIMIT);
            let actor = me.actor();
            ctx.store(move |s| people::search(s, &actor, &search))
                .await?
                .map_err(|e| ctx.internal(&e))?
        }
        None => Vec::new(),
    };
    let l = ctx.lang;
    let by_options = [
        ("auto", l.t("自动识别", "any")),
        ("name", l.t("姓名", "name")),
        ("address", l.t("地址", "address")),
        ("card", l.t("门禁卡", "card")),
        ("plate", l.t("车牌", "plate")),
    ]
    .map(|(v, t)| (v.to_string(), t.to_string()));
    let mut status_options = vec![(String::new(), l.t("全部状态", "any status").to_string())];
    status_options.extend(
        [
            PersonStatus::Active,
            PersonStatus::Suspended,
            PersonStatus::MovedOut,
        ]
        .map(|s| (s.as_str().to_string(), l.status(s).to_string())),
    );
    let body = html! {
        h1 { (l.t("住户", "Residents")) }
        section.box.no-print {
            form.row method="get" action="/residents" {
                label { span { (l.t("查找（姓名、地址 3-2-501、门禁卡 10:12345、车牌、R12）", "Search (name, address 3-2-501, card 10:12345, plate, R12)")) }
                    input type="search" name="q" value=(q.q) id="f-q"; }
                (layout::select(l.t("按", "By"), "by", &by_options, if q.by.is_empty() { "auto" } else { &q.by }))
                (layout::select(l.t("状态", "Status"), "status", &status_options, &q.status))
                button type="submit" { (l.t("查找", "Search")) }
                a.button href="/residents/new" id="add-resident" { (l.t("登记住户", "Add resident")) }
            }
        }
        (layout::problems(&problems))
        div.table-wrap {
            table {
                thead { tr {
                    th { "ID" } th { (l.t("姓名", "Name")) } th { (l.t("身份", "Role")) }
                    th { (l.t("状态", "Status")) } th { (l.t("地址", "Address")) }
                    th { (l.t("电话", "Phone")) } th { (l.t("有效期至", "Valid until")) }
                    th { (l.t("门禁卡", "Cards")) } th { (l.t("车牌", "Plates")) }
                } }
                tbody {
                    @for p in &rows {
                        tr {
                            td { a href=(format!("/residents/{}", p.id.0)) { (p.id) } }
                            td { a href=(format!("/residents/{}", p.id.0)) { (p.name) } }
                            td { (l.role(p.role)) }
                            td { (status_pill(l, p.status)) }
                            td { (p.address.as_ref().map(|a| a.to_string()).unwrap_or_default()) }
                            td { (p.phone.as_ref().map(|p| p.masked()).unwrap_or_default()) }
                            td { (p.valid_until.map(|d| d.to_string()).unwrap_or_default()) }
                            td { (p.cards.iter().map(|c| masked_card(c)).collect::<Vec<_>>().join(" ")) }
                            td { (p.plates.join(" ")) }
                        }
                    }
                    @if rows.is_empty() {
                        tr { td colspan="9" .muted { (l.t("没有符合条件的住户。", "No resident matches.")) } }
                    }
                }
            }
        }
        @if rows.len() as u32 >= LIST_LIMIT {
            p.muted { (l.t("只显示前 200 条，请缩小查找范围。", "Only the first 200 are shown; narrow the search.")) }
        }
    };
    Ok(layout::page(&ctx, l.t("住户", "Residents"), body))
}

pub fn masked_card(key: &str) -> String {
    key.parse::<CardNumber>()
        .map(|c| c.masked())
        .unwrap_or_else(|_| "?".into())
}

pub fn status_pill(l: Lang, s: PersonStatus) -> Markup {
    let class = match s {
        PersonStatus::Active => "pill good",
        _ => "pill bad",
    };
    html! { span class=(class) { (l.status(s)) } }
}

/// The resident form as posted (and as shown again with its problems).
#[derive(Deserialize, Default, Clone)]
pub struct PersonForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    id_kind: String,
    #[serde(default)]
    id_number: String,
    #[serde(default)]
    phone: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    address: String,
    #[serde(default)]
    household_kind: String,
    #[serde(default)]
    valid_from: String,
    #[serde(default)]
    valid_until: String,
    #[serde(default)]
    floating: Option<String>,
    #[serde(default)]
    residence_permit_until: String,
    #[serde(default)]
    notes: String,
    /// Edit form only: remove the phone on record (the field itself starts
    /// empty there, so an empty field keeps the number).
    #[serde(default)]
    clear_phone: Option<String>,
}

/// The form's values, checked by the same parsers as the CLI and the import.
struct Checked {
    name: String,
    id_document: Option<IdDocument>,
    phone: Option<Phone>,
    role: ResidentRole,
    address: Option<Address>,
    household_kind: Option<HouseholdKind>,
    valid_from: Option<NaiveDate>,
    valid_until: Option<NaiveDate>,
    floating: bool,
    residence_permit_until: Option<NaiveDate>,
    notes: Option<String>,
}

fn opt<T>(raw: &str, parse: impl FnOnce(&str) -> Result<T, String>) -> Result<Option<T>, String> {
    let raw = raw.trim();
    if raw.is_empty() {
        Ok(None)
    } else {
        parse(raw).map(Some)
    }
}

fn check(l: Lang, f: &PersonForm) -> Result<Checked, Vec<String>> {
    let mut problems = Vec::new();
    let mut note = |label: &str, r: Result<(), String>| {
        if let Err(e) = r {
            problems.push(format!("{label}: {e}"));
        }
    };
    let name = crate::domain::validate_name(&f.name);
    note(
        l.t("姓名", "name"),
        name.as_ref().map(|_| ()).map_err(Clone::clone),
    );
    let kind = opt(&f.id_kind, |s| s.parse::<IdKind>()).map(|k| k.unwrap_or(IdKind::ResidentId));
    note(
        l.t("证件类型", "ID kind"),
        kind.as_ref().map(|_| ()).map_err(Clone::clone),
    );
    let kind = kind.unwrap_or(IdKind::ResidentId);
    let id_document = opt(&f.id_number, |s| IdDocument::parse(kind, s));
    note(
        l.t("证件号码", "ID number"),
        id_document.as_ref().map(|_| ()).map_err(Clone::clone),
    );
    let phone = opt(&f.phone, |s| s.parse::<Phone>());
    note(
        l.t("手机", "phone"),
        phone.as_ref().map(|_| ()).map_err(Clone::clone),
    );
    let role = f.role.parse::<ResidentRole>();
    note(
        l.t("身份", "role"),
        role.as_ref().map(|_| ()).map_err(Clone::clone),
    );
    let address = opt(&f.address, |s| s.parse::<Address>());
    note(
        l.t("地址", "address"),
        address.as_ref().map(|_| ()).map_err(Clone::clone),
    );
    let household_kind = opt(&f.household_kind, |s| s.parse::<HouseholdKind>());
    note(
        l.t("房屋类型", "household kind"),
        household_kind.as_ref().map(|_| ()).map_err(Clone::clone),
    );
    let valid_from = opt(&f.valid_from, parse_date);
    note(
        l.t("生效日期", "valid from"),
        valid_from.as_ref().map(|_| ()).map_err(Clone::clone),
    );
    let valid_until = opt(&f.valid_until, parse_date);
    note(
        l.t("有效期至", "valid until"),
        valid_until.as_ref().map(|_| ()).map_err(Clone::clone),
    );
    let permit = opt(&f.residence_permit_until, parse_date);
    note(
        l.t("居住证有效期", "residence permit until"),
        permit.as_ref().map(|_| ()).map_err(Clone::clone),
    );
    let notes = f.notes.trim();
    if notes.chars().count() > 500 {
        problems.push(format!(
            "{}: longer than 500 characters",
            l.t("备注", "notes")
        ));
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    // Every Result above is Ok here.
    let (
        Ok(name),
        Ok(id_document),
        Ok(phone),
        Ok(role),
        Ok(address),
        Ok(household_kind),
        Ok(valid_from),
        Ok(valid_until),
        Ok(permit),
    ) = (
        name,
        id_document,
        phone,
        role,
        address,
        household_kind,
        valid_from,
        valid_until,
        permit,
    )
    else {
        return Err(vec!["invalid form".into()]);
    };
    Ok(Checked {
        name,
        id_document,
        phone,
        role,
        address,
        household_kind,
        valid_from,
        valid_until,
        floating: f.floating.is_some(),
        residence_permit_until: permit,
        notes: (!notes.is_empty()).then(|| notes.to_string()),
    })
}

/// What the edit form shows of the values on record instead of the values
/// themselves: the masked ID and phone (the full phone is only ever shown by
/// the audited "show in full").
struct OnRecord {
    id: String,
    phone: Option<String>,
}

fn person_form(
    ctx: &Ctx,
    action: &str,
    f: &PersonForm,
    on_record: Option<&OnRecord>,
    problems: &[String],
) -> Markup {
    let id_hint = on_record.map(|r| r.id.as_str());
    let phone_hint = on_record.and_then(|r| r.phone.as_deref());
    let l = ctx.lang;
    let Some(me) = ctx.user.as_ref() else {
        return html! {};
    };
    let roles: Vec<(String, String)> = ResidentRole::ALL
        .iter()
        .map(|r| (r.as_str().to_string(), l.role(*r).to_string()))
        .collect();
    let kinds: Vec<(String, String)> = IdKind::ALL
        .iter()
        .map(|k| (k.as_str().to_string(), l.id_kind(*k).to_string()))
        .collect();
    let mut households = vec![(
        String::new(),
        l.t("按身份默认", "default for the role").to_string(),
    )];
    households.extend(
        HouseholdKind::ALL
            .iter()
            .map(|k| (k.as_str().to_string(), l.household(*k).to_string())),
    );
    html! {
        (layout::problems(problems))
        section.box {
            form.grid method="post" action=(action) id="resident-form" {
                (csrf(me))
                (layout::input(l.t("姓名", "Name"), "name", &f.name, "text", None))
                (layout::select(l.t("身份", "Role"), "role", &roles, if f.role.is_empty() { "tenant" } else { &f.role }))
                (layout::select(l.t("证件类型", "ID kind"), "id_kind", &kinds, if f.id_kind.is_empty() { "resident_id" } else { &f.id_kind }))
                (layout::input(l.t("证件号码", "ID number"), "id_number", &f.id_number, "text", id_hint))
                (layout::input(l.t("手机", "Mobile"), "phone", &f.phone, "tel", phone_hint))
                @if phone_hint.is_some() {
                    label.check {
                        input type="checkbox" name="clear_phone" value="1" checked[f.clear_phone.is_some()];
                        span { (l.t("删除登记的手机号", "Remove the mobile number on record")) }
                    }
                }
                (layout::input(l.t("地址（楼栋-单元-房号）", "Address (building-unit-room)"), "address", &f.address, "text", Some("3-2-501")))
                (layout::select(l.t("房屋类型", "Household kind"), "household_kind", &households, &f.household_kind))
                (layout::input(l.t("生效日期", "Valid from"), "valid_from", &f.valid_from, "date", None))
                (layout::input(l.t("有效期至（租期结束）", "Valid until (lease end)"), "valid_until", &f.valid_until, "date", None))
                label.check {
                    input type="checkbox" name="floating" value="1" checked[f.floating.is_some()];
                    span { (l.t("流动人口", "Floating population")) }
                }
                (layout::input(l.t("居住证有效期至", "Residence permit until"), "residence_permit_until", &f.residence_permit_until, "date", None))
                label { span { (l.t("备注", "Notes")) } textarea name="notes" rows="2" { (f.notes) } }
                div { button type="submit" id="resident-save" { (l.t("保存", "Save")) } }
            }
        }
    }
}

pub async fn new_form(ctx: Ctx) -> Page {
    ctx.need(Perm::Register)?;
    let title = ctx.t("登记住户", "Add a resident");
    let body = html! {
        h1 { (title) }
        (person_form(&ctx, "/residents/new", &PersonForm::default(), None, &[]))
    };
    Ok(layout::page(&ctx, title, body))
}

pub async fn create(
    Posted {
        ctx, user, form, ..
    }: Posted<PersonForm>,
) -> Page {
    ctx.need(Perm::Register)?;
    let title = ctx.t("登记住户", "Add a resident");
    let again = |problems: Vec<String>| {
        let body =
            html! { h1 { (title) } (person_form(&ctx, "/residents/new", &form, None, &problems)) };
        let mut r = layout::page(&ctx, title, body);
        *r.status_mut() = axum::http::StatusCode::UNPROCESSABLE_ENTITY;
        r
    };
    let c = match check(ctx.lang, &form) {
        Ok(c) => c,
        Err(problems) => return Ok(again(problems)),
    };
    let new = NewPerson {
        name: c.name,
        id_document: c.id_document,
        phone: c.phone,
        role: c.role,
        address: c.address,
        household_kind: c.household_kind,
        valid_from: c.valid_from,
        valid_until: c.valid_until,
        floating: c.floating,
        residence_permit_until: c.residence_permit_until,
        notes: c.notes,
    };
    let actor = user.actor();
    match ctx.store(move |s| people::add(s, &actor, &new)).await? {
        Ok(id) => {
            ctx.flash(
                true,
                format!("{} {id}", ctx.t("已登记住户", "Added resident")),
            );
            Ok(see_other(&format!("/residents/{}", id.0)))
        }
        Err(e) => Ok(again(vec![format!("{e:#}")])),
    }
}

async fn detail(ctx: &Ctx, id: i64) -> Result<PersonDetail, crate::console::web::Fail> {
    let me = ctx.need(Perm::Register)?;
    let actor = me.actor();
    match ctx
        .store(move |s| people::show(s, &actor, ResidentId(id)))
        .await?
    {
        Ok(d) => Ok(d),
        Err(e) if e.to_string().starts_with("no resident") => Err(ctx.not_found()),
        Err(e) => Err(ctx.internal(&e)),
    }
}

pub async fn show(ctx: Ctx, Path(id): Path<i64>) -> Page {
    let d = detail(&ctx, id).await?;
    let me = ctx.need(Perm::Register)?;
    let l = ctx.lang;
    let p = &d.person;
    let offset = ctx.app.config.site.utc_offset_minutes;
    let readers: Vec<(String, String)> = ctx
        .app
        .config
        .gates
        .iter()
        .filter(|g| g.wiegand_d0_pin.is_some())
        .map(|g| (g.id.to_string(), format!("{} ({})", g.name, g.id)))
        .collect();
    let base = format!("/residents/{id}");
    let body = html! {
        h1 { (p.name) " " span.muted { (p.id) } }
        section.box {
            dl.facts {
                dt { (l.t("身份", "Role")) } dd { (l.role(p.role)) }
                dt { (l.t("状态", "Status")) } dd id="resident-status" { (status_pill(l, p.status)) }
                dt { (l.t("地址", "Address")) } dd { (p.address.as_ref().map(|a| a.to_string()).unwrap_or_else(|| "-".into())) }
                dt { (l.t("房屋类型", "Household")) } dd { (p.household_kind.map(|k| l.household(k)).unwrap_or("-")) }
                dt { (l.t("证件", "ID")) } dd {
                    (p.id_kind.map(|k| l.id_kind(k)).unwrap_or("-")) " " (p.id_masked.as_deref().unwrap_or(""))
                    @if let Some(kind) = p.id_kind.filter(|_| p.id_masked.is_some()) {
                        form.inline.no-print method="post" action=(format!("{base}/check-id")) id="check-id-form" {
                            (csrf(&me))
                            input type="hidden" name="id_kind" value=(kind.as_str());
                            input type="text" name="id_number" id="f-check-id" autocomplete="off"
                                placeholder=(l.t("输入证件号码核对", "type the number to check it"));
                            button.link type="submit" id="check-id" { (l.t("核对（将记入审计）", "check (audited)")) }
                        }
                    }
                }
                dt { (l.t("手机", "Mobile")) } dd {
                    (p.phone.as_ref().map(|p| p.masked()).unwrap_or_else(|| "-".into()))
                    @if p.phone.is_some() {
                        " "
                        form.inline method="post" action=(format!("{base}/phone")) {
                            (csrf(&me))
                            button.link type="submit" { (l.t("显示完整号码（将记入审计）", "show in full (audited)")) }
                        }
                    }
                }
                dt { (l.t("有效期", "Valid")) } dd {
                    (p.valid_from.map(|d| d.to_string()).unwrap_or_default()) " – " (p.valid_until.map(|d| d.to_string()).unwrap_or_default())
                }
                @if p.floating || p.residence_permit_until.is_some() {
                    dt { (l.t("流动人口", "Floating")) } dd {
                        (l.t("是", "yes")) " " (p.residence_permit_until.map(|d| format!("({} {d})", l.t("居住证至", "permit until"))).unwrap_or_default())
                    }
                }
                @if let Some(n) = &p.notes { dt { (l.t("备注", "Notes")) } dd { (n) } }
                @if !d.groups.is_empty() { dt { (l.t("权限组", "Access groups")) } dd { (d.groups.join(", ")) } }
                dt { (l.t("登记", "Created")) } dd.muted { (layout::local_time(&p.created_at, offset)) " " (p.created_by) }
                dt { (l.t("修改", "Updated")) } dd.muted { (layout::local_time(&p.updated_at, offset)) " " (p.updated_by) }
            }
            div.row.no-print {
                a.button href=(format!("{base}/edit")) id="edit-resident" { (l.t("修改", "Edit")) }
                @for (status, zh, en, class) in [
                    (PersonStatus::Suspended, "暂停通行", "Suspend", "secondary"),
                    (PersonStatus::Active, "恢复通行", "Resume", "secondary"),
                    (PersonStatus::MovedOut, "迁出", "Move out", "secondary"),
                ] {
                    @if p.status != status {
                        form.inline method="post" action=(format!("{base}/status")) {
                            (csrf(&me))
                            input type="hidden" name="status" value=(status.as_str());
                            button class=(class) type="submit" { (l.t(zh, en)) }
                        }
                    }
                }
                form.inline method="post" action=(format!("{base}/remove")) data-confirm=(l.t("删除此住户及其门禁卡、车辆和访客通行证？过去的通行记录保留（匿名）。", "Remove this resident with their cards, vehicles and visitor passes? Past events are kept under a pseudonym.")) {
                    (csrf(&me))
                    button.danger type="submit" { (l.t("删除", "Remove")) }
                }
            }
        }

        h2 id="faces" { (l.t("人脸", "Face")) }
        section.box.no-print {
            a.button href=(format!("{base}/face")) id="face-page" { (l.t("人脸登记", "Enrol a face")) }
        }

        h2 id="cards" { (l.t("门禁卡", "Cards")) }
        div.table-wrap {
            table id="card-table" {
                thead { tr { th { (l.t("卡号", "Card")) } th { (l.t("格式", "Format")) } th { (l.t("分配时间", "Assigned")) } th {} } }
                tbody {
                    @for c in &d.cards {
                        tr {
                            td.card { (c.masked) } td { (c.format.as_str()) }
                            td.muted { (layout::local_time(&c.created_at, offset)) " " (c.created_by) }
                            td {
                                form.inline method="post" action=(format!("{base}/cards/revoke")) data-confirm=(l.t("收回此卡？", "Revoke this card?")) {
                                    (csrf(&me))
                                    input type="hidden" name="card" value=(c.card);
                                    button.link type="submit" { (l.t("收回", "revoke")) }
                                }
                            }
                        }
                    }
                    @if d.cards.is_empty() { tr { td colspan="4" .muted { (l.t("没有门禁卡。", "No card.")) } } }
                }
            }
        }
        section.box.no-print {
            @if readers.is_empty() {
                p.muted { (l.t("没有配置读卡器。", "No card reader is configured.")) }
            } @else {
                form.row method="post" action=(format!("{base}/cards/capture")) data-wait="wait-card" id="capture-form" {
                    (csrf(&me))
                    (layout::select(l.t("在此读卡器上刷卡", "Present the card at reader"), "gate", &readers, ""))
                    button type="submit" id="capture-start" { (l.t("开始读卡", "Read the card now")) }
                }
                p.wait id="wait-card" role="status" {
                    (l.t("请在 30 秒内在所选读卡器上刷卡……", "Present the card at the chosen reader within 30 seconds…"))
                }
            }
            details {
                summary { (l.t("手工输入卡号", "Type the card number instead")) }
                form.row method="post" action=(format!("{base}/cards/add")) {
                    (csrf(&me))
                    (layout::input(l.t("卡号（设施码:卡号）", "Card (facility:number)"), "card", "", "text", Some("10:12345")))
                    button type="submit" { (l.t("分配", "Assign")) }
                }
            }
        }

        h2 id="vehicles" { (l.t("车辆", "Vehicles")) }
        div.table-wrap {
            table {
                thead { tr { th { (l.t("车牌", "Plate")) } th { (l.t("车型", "Kind")) } th { (l.t("颜色", "Colour")) } th {} } }
                tbody {
                    @for v in &d.vehicles {
                        tr {
                            td { (v.plate) } td { (v.kind.as_deref().unwrap_or("")) } td { (v.colour.as_deref().unwrap_or("")) }
                            td {
                                form.inline method="post" action=(format!("{base}/vehicles/remove")) data-confirm=(l.t("删除此车辆？", "Remove this vehicle?")) {
                                    (csrf(&me))
                                    input type="hidden" name="plate" value=(v.plate);
                                    button.link type="submit" { (l.t("删除", "remove")) }
                                }
                            }
                        }
                    }
                    @if d.vehicles.is_empty() { tr { td colspan="4" .muted { (l.t("没有车辆。", "No vehicle.")) } } }
                }
            }
        }
        section.box.no-print {
            form.row method="post" action=(format!("{base}/vehicles/add")) {
                (csrf(&me))
                (layout::input(l.t("车牌", "Plate"), "plate", "", "text", Some("川A12345")))
                (layout::input(l.t("车型", "Kind"), "kind", "", "text", None))
                (layout::input(l.t("颜色", "Colour"), "colour", "", "text", None))
                button type="submit" { (l.t("登记车辆", "Add vehicle")) }
            }
        }

        @if !d.visitor_passes.is_empty() {
            h2 { (l.t("邀请的访客", "Visitor passes")) }
            div.table-wrap {
                table {
                    thead { tr { th { "ID" } th { (l.t("访客", "Visitor")) } th { (l.t("有效期", "Valid")) } th { (l.t("剩余次数", "Uses left")) } } }
                    tbody {
                        @for v in &d.visitor_passes {
                            tr {
                                td { (v.id) } td { (v.visitor_name) }
                                td { (layout::local_instant(v.valid_from, offset)) " – " (layout::local_instant(v.valid_until, offset)) }
                                td { (v.uses_left.map(|n| n.to_string()).unwrap_or_else(|| "∞".into())) @if v.revoked { " " span.pill.bad { (l.t("已撤销", "revoked")) } } }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(layout::page(&ctx, &p.name, body))
}

fn form_of(d: &PersonDetail) -> PersonForm {
    let p = &d.person;
    let date = |d: Option<NaiveDate>| d.map(|d| d.to_string()).unwrap_or_default();
    PersonForm {
        name: p.name.clone(),
        id_kind: p
            .id_kind
            .map(|k| k.as_str().to_string())
            .unwrap_or_default(),
        id_number: String::new(),
        // Never the number on record: the form would show it in full without
        // the audited "show in full". Empty keeps it (see `on_record`).
        phone: String::new(),
        role: p.role.as_str().to_string(),
        address: p
            .address
            .as_ref()
            .map(|a| a.to_string())
            .unwrap_or_default(),
        household_kind: p
            .household_kind
            .map(|k| k.as_str().to_string())
            .unwrap_or_default(),
        valid_from: date(p.valid_from),
        valid_until: date(p.valid_until),
        floating: p.floating.then(|| "1".to_string()),
        residence_permit_until: date(p.residence_permit_until),
        notes: p.notes.clone().unwrap_or_default(),
        clear_phone: None,
    }
}

fn on_record(l: Lang, d: &PersonDetail) -> OnRecord {
    let keep = |masked: &str| {
        format!(
            "{} {masked}; {}",
            l.t("当前", "now"),
            l.t("留空则不修改", "leave empty to keep")
        )
    };
    OnRecord {
        id: match &d.person.id_masked {
            Some(m) => keep(m),
            None => l.t("未登记", "none on record").to_string(),
        },
        phone: d.person.phone.as_ref().map(|p| keep(&p.masked())),
    }
}

pub async fn edit_form(ctx: Ctx, Path(id): Path<i64>) -> Page {
    let d = detail(&ctx, id).await?;
    let title = ctx.t("修改住户", "Edit resident");
    let record = on_record(ctx.lang, &d);
    let body = html! {
        h1 { (title) " " span.muted { (d.person.id) } }
        (person_form(&ctx, &format!("/residents/{id}/edit"), &form_of(&d), Some(&record), &[]))
    };
    Ok(layout::page(&ctx, title, body))
}

pub async fn update(
    Path(id): Path<i64>,
    Posted {
        ctx, user, form, ..
    }: Posted<PersonForm>,
) -> Page {
    let record = on_record(ctx.lang, &detail(&ctx, id).await?);
    let title = ctx.t("修改住户", "Edit resident");
    let again = |problems: Vec<String>| {
        let body = html! { h1 { (title) } (person_form(&ctx, &format!("/residents/{id}/edit"), &form, Some(&record), &problems)) };
        let mut r = layout::page(&ctx, title, body);
        *r.status_mut() = axum::http::StatusCode::UNPROCESSABLE_ENTITY;
        r
    };
    let c = match check(ctx.lang, &form) {
        Ok(c) => c,
        Err(problems) => return Ok(again(problems)),
    };
    let change = PersonUpdate {
        name: Some(c.name),
        // An empty ID field keeps the document on record.
        id_document: c.id_document.map(Some),
        // An empty phone field keeps the number unless "remove" is ticked.
        phone: match (c.phone, form.clear_phone.is_some()) {
            (Some(p), _) => Some(Some(p)),
            (None, true) => Some(None),
            (None, false) => None,
        },
        role: Some(c.role),
        address: Some(c.address),
        household_kind: c.household_kind,
        valid_from: Some(c.valid_from),
        valid_until: Some(c.valid_until),
        floating: Some(c.floating),
        residence_permit_until: Some(c.residence_permit_until),
        notes: Some(c.notes),
    };
    let actor = user.actor();
    match ctx
        .store(move |s| people::update(s, &actor, ResidentId(id), &change))
        .await?
    {
        Ok(changed) if changed.is_empty() => {
            ctx.flash(true, ctx.t("没有修改。", "Nothing changed."));
            Ok(see_other(&format!("/residents/{id}")))
        }
        Ok(changed) => {
            ctx.flash(
                true,
                format!("{} {}", ctx.t("已保存：", "Saved:"), changed.join(", ")),
            );
            Ok(see_other(&format!("/residents/{id}")))
        }
        Err(e) => Ok(again(vec![format!("{e:#}")])),
    }
}

#[derive(Deserialize)]
pub struct StatusForm {
    status: String,
}

pub async fn set_status(
    Path(id): Path<i64>,
    Posted {
        ctx, user, form, ..
    }: Posted<StatusForm>,
) -> Page {
    ctx.need(Perm::Register)?;
    let status: PersonStatus = form
        .status
        .parse()
        .map_err(|e: String| ctx.bad_request(e))?;
    let actor = user.actor();
    match ctx
        .store(move |s| people::set_status(s, &actor, ResidentId(id), status))
        .await?
    {
        Ok(_) => ctx.flash(
            true,
            format!(
                "{} {}",
                ctx.t("状态已改为", "Status is now"),
                ctx.lang.status(status)
            ),
        ),
        Err(e) => ctx.flash(false, format!("{e:#}")),
    }
    Ok(see_other(&format!("/residents/{id}")))
}

pub async fn remove(
    Path(id): Path<i64>,
    Posted { ctx, user, .. }: Posted<super::login::Nothing>,
) -> Page {
    ctx.need(Perm::Register)?;
    let actor = user.actor();
    match ctx
        .store(move |s| people::remove(s, &actor, ResidentId(id)))
        .await?
    {
        Ok(r) => {
            ctx.flash(
                true,
                format!(
                    "{} {} {} ({} {}, {} {})",
                    ctx.t("已删除", "Removed"),
                    r.id,
                    r.masked_name,
                    r.cards,
                    ctx.t("张卡", "card(s)"),
                    r.vehicles,
                    ctx.t("辆车", "vehicle(s)")
                ),
            );
            Ok(see_other("/residents"))
        }
        Err(e) => {
            ctx.flash(false, format!("{e:#}"));
            Ok(see_other(&format!("/residents/{id}")))
        }
    }
}

pub async fn reveal_phone(
    Path(id): Path<i64>,
    Posted { ctx, user, .. }: Posted<super::login::Nothing>,
) -> Page {
    ctx.need(Perm::Register)?;
    let actor = user.actor();
    match ctx
        .store(move |s| people::reveal_phone(s, &actor, ResidentId(id)))
        .await?
    {
        Ok(Some(phone)) => ctx.flash(
            true,
            format!("{} {}", ctx.t("手机：", "Mobile:"), phone.as_str()),
        ),
        Ok(None) => ctx.flash(
            false,
            ctx.t("没有登记手机。", "No mobile number on record."),
        ),
        Err(e) => ctx.flash(false, format!("{e:#}")),
    }
    Ok(see_other(&format!("/residents/{id}")))
}

#[derive(Deserialize)]
pub struct CheckIdForm {
    #[serde(default)]
    id_kind: String,
    #[serde(default)]
    id_number: String,
}

/// The desk's "check an ID number": the register keeps only a keyed hash, so
/// the number a person shows is typed in and compared (audited, with the
/// answer and never the number). The answer is a flash; the number is not
/// echoed back.
pub async fn check_id(
    Path(id): Path<i64>,
    Posted {
        ctx, user, form, ..
    }: Posted<CheckIdForm>,
) -> Page {
    ctx.need(Perm::Register)?;
    let kind = form.id_kind.parse::<IdKind>().unwrap_or(IdKind::ResidentId);
    let doc = match IdDocument::parse(kind, &form.id_number) {
        Ok(doc) => doc,
        Err(e) => {
            ctx.flash(false, format!("{}: {e}", ctx.t("证件号码", "ID number")));
            return Ok(see_other(&format!("/residents/{id}")));
        }
    };
    let actor = user.actor();
    match ctx
        .store(move |s| people::check_id_document(s, &actor, ResidentId(id), &doc))
        .await?
    {
        Ok(Some(true)) => ctx.flash(
            true,
            ctx.t("证件号码一致。", "The ID number matches the one on record."),
        ),
        Ok(Some(false)) => ctx.flash(
            false,
            ctx.t(
                "证件号码不一致。",
                "The ID number does NOT match the one on record.",
            ),
        ),
        Ok(None) => ctx.flash(false, ctx.t("没有登记证件。", "No ID document on record.")),
        Err(e) => ctx.flash(false, format!("{e:#}")),
    }
    Ok(see_other(&format!("/residents/{id}")))
}

/// A resident page response for handlers in other files.
pub fn back_to(id: i64, anchor: &str) -> Response {
    see_other(&format!("/residents/{id}#{anchor}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn search(w: Wanted) -> Search {
        match w {
            Wanted::Search(s) => *s,
            other => panic!("expected a search, got {other:?}"),
        }
    }

    #[test]
    fn search_box_reads_cards_plates_addresses_ids_and_names() {
        assert!(matches!(interpret(" ", "auto").unwrap(), Wanted::All));
        assert!(matches!(
            interpret("R12", "auto").unwrap(),
            Wanted::Resident(ResidentId(12))
        ));
        let s = search(interpret("10:12345", "auto").unwrap());
        assert_eq!(s.card.unwrap().to_string(), "10:12345");
        let s = search(interpret("川a 12345", "auto").unwrap());
        assert_eq!(s.plate.unwrap().as_str(), "川A12345");
        let s = search(interpret("3-2-501", "auto").unwrap());
        assert_eq!(s.address.unwrap().room.as_deref(), Some("501"));
        let s = search(interpret("3栋", "auto").unwrap());
        assert_eq!(s.address.unwrap().building, "3");
        let s = search(interpret("张三", "auto").unwrap());
        assert_eq!(s.name.as_deref(), Some("张三"));
        // A name that starts like a plate is still a name.
        let s = search(interpret("川川", "auto").unwrap());
        assert_eq!(s.name.as_deref(), Some("川川"));
        let s = search(interpret("Rose", "auto").unwrap());
        assert_eq!(s.name.as_deref(), Some("Rose"));
    }

    #[test]
    fn forced_reading_reports_what_is_wrong() {
        assert!(interpret("hello", "card")
            .unwrap_err()
            .contains("not a number"));
        assert!(interpret("川", "plate").is_err());
        let s = search(interpret("3", "name").unwrap());
        assert_eq!(s.name.as_deref(), Some("3"));
    }
}
