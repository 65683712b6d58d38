//! Console accounts: managers create guard, auditor and manager accounts,
//! change roles, disable accounts and set new passwords; everyone changes
//! their own password. Changing an account ends its sessions.

use maud::{html, Markup};
use serde::Deserialize;

use super::login::{hash_blocking, verify_blocking};
use crate::console::auth::Perm;
use crate::console::layout::{self, csrf};
use crate::console::password;
use crate::console::web::{see_other, Ctx, Page, Posted};
use crate::store::console::{self as accounts, AccountName, ConsoleRole};

fn role_options(ctx: &Ctx) -> Vec<(String, String)> {
    ConsoleRole::ALL
        .iter()
        .map(|r| {
            (
                r.as_str().to_string(),
                ctx.lang.console_role(*r).to_string(),
            )
        })
        .collect()
}

fn new_account_form(ctx: &Ctx, name: &str, role: &str, problems: &[String]) -> Markup {
    let l = ctx.lang;
    let Some(me) = ctx.user.as_ref() else {
        return html! {};
    };
    html! {
        h2 { (l.t("新建账号", "New account")) }
        (layout::problems(problems))
        section.box {
            form.grid method="post" action="/accounts/new" id="account-form" {
                (csrf(me))
                (layout::input(l.t("账号名", "Account name"), "name", name, "text", None))
                (layout::select(l.t("角色", "Role"), "role", &role_options(ctx), if role.is_empty() { "guard" } else { role }))
                (layout::input(l.t("初始密码（至少 10 个字符）", "Initial password (10+ characters)"), "password", "", "password", None))
                div { button type="submit" id="account-create" { (l.t("创建", "Create")) } }
            }
        }
    }
}

async fn page(ctx: &Ctx, name: &str, role: &str, problems: &[String]) -> Page {
    let me = ctx.need(Perm::Accounts)?;
    let list = ctx
        .read(accounts::list)
        .await?
        .map_err(|e| ctx.internal(&e))?;
    let l = ctx.lang;
    let offset = ctx.app.config.site.utc_offset_minutes;
    let body = html! {
        h1 { (l.t("控制台账号", "Console accounts")) }
        p.muted { (l.t(
            "物业经理：全部功能；保安：实时通行、开门、访客通行证；审计员：只读日志。",
            "Manager: everything; guard: live events, opening gates, visitor passes; auditor: read-only logs."
        )) }
        div.table-wrap {
            table id="account-table" {
                thead { tr {
                    th { (l.t("账号", "Account")) } th { (l.t("角色", "Role")) } th { (l.t("状态", "State")) }
                    th { (l.t("上次登录", "Last sign-in")) } th { (l.t("修改", "Change")) }
                } }
                tbody {
                    @for a in &list {
                        tr {
                            td { (a.name) }
                            td { (l.console_role(a.role)) }
                            td { @if a.disabled { span.pill.bad { (l.t("已停用", "disabled")) } } @else { span.pill.good { (l.t("正常", "active")) } } }
                            td.muted { (a.last_login_at.as_deref().map(|t| layout::local_time(t, offset)).unwrap_or_default()) }
                            td {
                                form.row method="post" action="/accounts/change" {
                                    (csrf(&me))
                                    input type="hidden" name="name" value=(a.name);
                                    select name="role" aria-label=(l.t("角色", "Role")) {
                                        @for (v, t) in role_options(ctx) { option value=(v) selected[v == a.role.as_str()] { (t) } }
                                    }
                                    button.secondary type="submit" name="action" value="role" { (l.t("改角色", "Set role")) }
                                    @if a.disabled {
                                        button.secondary type="submit" name="action" value="enable" { (l.t("启用", "Enable")) }
                                    } @else {
                                        button.secondary type="submit" name="action" value="disable" { (l.t("停用", "Disable")) }
                                    }
                                    input type="password" name="password" placeholder=(l.t("新密码", "new password")) aria-label=(l.t("新密码", "New password"));
                                    button.secondary type="submit" name="action" value="password" { (l.t("重设密码", "Set password")) }
                                }
                            }
                        }
                    }
                }
            }
        }
        (new_account_form(ctx, name, role, problems))
    };
    Ok(layout::page(ctx, l.t("账号", "Accounts"), body))
}

pub async fn list(ctx: Ctx) -> Page {
    page(&ctx, "", "", &[]).await
}

#[derive(Deserialize)]
pub struct NewAccount {
    name: String,
    role: String,
    password: String,
}

pub async fn create(
    Posted {
        ctx, user, form, ..
    }: Posted<NewAccount>,
) -> Page {
    ctx.need(Perm::Accounts)?;
    let mut problems = Vec::new();
    let name = form
        .name
        .parse::<AccountName>()
        .map_err(|e| problems.push(e))
        .ok();
    let role = form
        .role
        .parse::<ConsoleRole>()
        .map_err(|e| problems.push(e))
        .ok();
    if let Err(e) = password::check_policy(&form.name, &form.password) {
        problems.push(e.to_string());
    }
    let (Some(name), Some(role), true) = (name, role, problems.is_empty()) else {
        return page(&ctx, &form.name, &form.role, &problems).await;
    };
    let hash = hash_blocking(&ctx, form.password).await?;
    let actor = user.actor();
    let n = name.clone();
    match ctx
        .store(move |s| accounts::create(s, &actor, &n, role, &hash))
        .await?
    {
        Ok(_) => {
            ctx.flash(
                true,
                format!(
                    "{} {name} ({})",
                    ctx.t("已创建账号", "Created account"),
                    ctx.lang.console_role(role)
                ),
            );
            Ok(see_other("/accounts"))
        }
        Err(e) => page(&ctx, &form.name, &form.role, &[format!("{e:#}")]).await,
    }
}

#[derive(Deserialize)]
pub struct Change {
    name: String,
    action: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    password: String,
}

pub async fn change(
    Posted {
        ctx, user, form, ..
    }: Posted<Change>,
) -> Page {
    ctx.need(Perm::Accounts)?;
    let actor = user.actor();
    let name = form.name.clone();
    let result = match form.action.as_str() {
        "role" => {
            let role: ConsoleRole = form.role.parse().map_err(|e: String| ctx.bad_request(e))?;
            ctx.store(move |s| accounts::set_role(s, &actor, &name, role))
                .await?
        }
        "disable" | "enable" => {
            let disabled = form.action == "disable";
            ctx.store(move |s| accounts::set_disabled(s, &actor, &name, disabled))
                .await?
        }
        "password" => {
            if let Err(e) = password::check_policy(&form.name, &form.password) {
                ctx.flash(false, format!("{}: {e}", form.name));
                return Ok(see_other("/accounts"));
            }
            let hash = hash_blocking(&ctx, form.password.clone()).await?;
            ctx.store(move |s| accounts::set_password(s, &actor, &name, &hash))
                .await?
        }
        other => return Err(ctx.bad_request(format!("unknown action {other:?}"))),
    };
    match result {
        Ok(()) => {
            // Whatever changed, the account signs in again under the new terms.
            ctx.app.sessions.end_account(&form.name);
            ctx.flash(
                true,
                format!("{} {}", ctx.t("已修改账号", "Changed account"), form.name),
            );
        }
        Err(e) => ctx.flash(false, format!("{e:#}")),
    }
    Ok(see_other("/accounts"))
}

fn own_form(ctx: &Ctx, problems: &[String]) -> Page {
    let Some(me) = ctx.user.as_ref() else {
        return Err(ctx.sign_in());
    };
    let l = ctx.lang;
    let body = html! {
        h1 { (l.t("修改密码", "Change password")) " " span.muted { (me.name) } }
        (layout::problems(problems))
        section.box {
            form.grid method="post" action="/account/password" {
                (csrf(me))
                (layout::input(l.t("当前密码", "Current password"), "current", "", "password", None))
                (layout::input(l.t("新密码（至少 10 个字符）", "New password (10+ characters)"), "password", "", "password", None))
                (layout::input(l.t("确认新密码", "Repeat new password"), "confirm", "", "password", None))
                div { button type="submit" { (l.t("保存", "Save")) } }
            }
        }
    };
    Ok(layout::page(ctx, l.t("修改密码", "Change password"), body))
}

pub async fn own_password_form(ctx: Ctx) -> Page {
    own_form(&ctx, &[])
}

#[derive(Deserialize)]
pub struct OwnPassword {
    current: String,
    password: String,
    confirm: String,
}

pub async fn own_password(
    Posted {
        ctx, user, form, ..
    }: Posted<OwnPassword>,
) -> Page {
    let mut problems = Vec::new();
    if let Err(e) = password::check_policy(&user.name, &form.password) {
        problems.push(e.to_string());
    }
    if form.password != form.confirm {
        problems.push(ctx.t("两次输入的密码不一致", "the passwords differ").into());
    }
    let who = user.name.clone();
    let stored = ctx
        .read(move |conn| accounts::credentials(conn, &who))
        .await?
        .map_err(|e| ctx.internal(&e))?;
    let Some(stored) = stored else {
        return Err(ctx.sign_in());
    };
    let current = form.current.clone();
    let hash = stored.password_hash.clone();
    let right = verify_blocking(&ctx, current, hash).await?;
    if !right {
        problems.push(
            ctx.t("当前密码不正确", "the current password is wrong")
                .into(),
        );
    }
    if !problems.is_empty() {
        return own_form(&ctx, &problems);
    }
    let hash = hash_blocking(&ctx, form.password).await?;
    let (actor, name) = (user.actor(), user.name.clone());
    ctx.store(move |s| accounts::set_password(s, &actor, &name, &hash))
        .await?
        .map_err(|e| ctx.internal(&e))?;
    ctx.app.sessions.end_account(&user.name);
    Ok(see_other("/login"))
}
