//! Signing in and out, the one-time first setup, the language switch.

use std::time::Instant;

use axum::extract::{Path, Query};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use maud::html;
use serde::Deserialize;

use crate::console::auth::random_token;
use crate::console::i18n::{self, Lang};
use crate::console::layout::{self, home_for};
use crate::console::web::{
    local_path, see_other, set_cookie, Ctx, Fail, Page, Posted, PrePosted, CSRF_FIELD, PRE_COOKIE,
    SESSION_COOKIE,
};
use crate::console::{password, AppRef};
use crate::store::console::{self as accounts, AccountName};

pub async fn home(ctx: Ctx) -> Response {
    match &ctx.user {
        Some(u) => see_other(home_for(u)),
        None => see_other("/login"),
    }
}

pub async fn not_found(ctx: Ctx) -> Fail {
    ctx.not_found()
}

/// The pre-session token for a login or setup form, set as a cookie if new.
fn pre_token(ctx: &Ctx) -> (String, bool) {
    match &ctx.pre_token {
        Some(t) if t.len() >= 32 => (t.clone(), false),
        _ => (random_token(), true),
    }
}

fn with_pre(ctx: &Ctx, mut r: Response, token: &str, fresh: bool) -> Response {
    if fresh {
        r.headers_mut().append(
            header::SET_COOKIE,
            set_cookie(PRE_COOKIE, token, ctx.app.secure, None),
        );
    }
    r
}

/// Starts a session for `name` and answers with its cookie and a redirect.
fn signed_in(ctx: &Ctx, name: &str, role: accounts::ConsoleRole, to: &str) -> Response {
    let token = ctx.app.sessions.create(name, role, Instant::now());
    let mut r = see_other(to);
    r.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, &token, ctx.app.secure, None),
    );
    r
}

#[derive(Deserialize)]
pub struct SetupQuery {
    #[serde(default)]
    token: String,
}

fn setup_page(ctx: &Ctx, token: &str, name: &str, problems: &[String]) -> Response {
    let (pre, fresh) = pre_token(ctx);
    let body = html! {
        h1 { (ctx.t("创建第一个物业经理账号", "Create the first manager account")) }
        p.muted { (ctx.t(
            "此链接只能使用一次。密码至少 10 个字符。",
            "This link works once. The password needs at least 10 characters."
        )) }
        (layout::problems(problems))
        section.box {
            form.grid method="post" action="/setup" {
                input type="hidden" name=(CSRF_FIELD) value=(pre);
                input type="hidden" name="token" value=(token);
                (layout::input(ctx.t("账号名", "Account name"), "name", name, "text", None))
                (layout::input(ctx.t("密码", "Password"), "password", "", "password", None))
                (layout::input(ctx.t("确认密码", "Repeat password"), "confirm", "", "password", None))
                div { button type="submit" id="setup-submit" { (ctx.t("创建并登录", "Create and sign in")) } }
            }
        }
    };
    let r = layout::page(ctx, ctx.t("初始设置", "First setup"), body);
    with_pre(ctx, r, &pre, fresh)
}

fn setup_closed(ctx: &Ctx) -> Page {
    let body = html! {
        h1 { (ctx.t("已完成初始设置", "Already set up")) }
        p { (ctx.t("控制台已有账号，请直接登录。", "The console has accounts; sign in.")) }
        p { a.button href="/login" { (ctx.t("登录", "Sign in")) } }
    };
    let mut r = layout::page(ctx, ctx.t("初始设置", "First setup"), body);
    *r.status_mut() = axum::http::StatusCode::GONE;
    Err(Fail(Box::new(r)))
}

pub async fn setup_form(ctx: Ctx, Query(q): Query<SetupQuery>) -> Page {
    if !ctx.app.setup.is_open() {
        return setup_closed(&ctx);
    }
    if !ctx.app.setup.matches(&q.token) {
        return Err(ctx.forbidden());
    }
    Ok(setup_page(&ctx, &q.token, "", &[]))
}

#[derive(Deserialize)]
pub struct SetupForm {
    token: String,
    name: String,
    password: String,
    confirm: String,
}

pub async fn setup(PrePosted { ctx, form }: PrePosted<SetupForm>) -> Page {
    if !ctx.app.setup.is_open() {
        return setup_closed(&ctx);
    }
    if !ctx.app.setup.matches(&form.token) {
        return Err(ctx.forbidden());
    }
    let mut problems = Vec::new();
    let name = form
        .name
        .parse::<AccountName>()
        .map_err(|e| problems.push(e))
        .ok();
    if let Err(e) = password::check_policy(&form.name, &form.password) {
        problems.push(e.to_string());
    }
    if form.password != form.confirm {
        problems.push(ctx.t("两次输入的密码不一致", "the passwords differ").into());
    }
    let (Some(name), true) = (name, problems.is_empty()) else {
        return Ok(setup_page(&ctx, &form.token, &form.name, &problems));
    };
    let hash = hash_blocking(&ctx, form.password).await?;
    let n = name.clone();
    match ctx
        .store(move |store| accounts::create_first(store, &n, &hash))
        .await?
    {
        Ok(_) => {}
        Err(e) => {
            return Ok(setup_page(
                &ctx,
                &form.token,
                &form.name,
                &[format!("{e:#}")],
            ))
        }
    }
    ctx.app.setup.close();
    ctx.app.limiter.remember(name.as_str(), &ctx.peer);
    tracing::info!(account = %name, "console: first manager account created; the setup link is closed");
    let (peer, who) = (ctx.peer.clone(), name.to_string());
    ctx.store(move |store| accounts::record_login(store, &who, &peer))
        .await?
        .map_err(|e| ctx.internal(&e))?;
    Ok(signed_in(
        &ctx,
        name.as_str(),
        accounts::ConsoleRole::Manager,
        "/residents",
    ))
}

/// Hashes a new password on the shared hashing threads (at most two at once).
pub(crate) async fn hash_blocking(ctx: &Ctx, password: String) -> Result<String, Fail> {
    match password::hash_queued(password).await {
        Ok(hashed) => hashed.map_err(|e| ctx.internal(&e)),
        Err(busy) => Err(Fail(Box::new(busy_page(ctx, &busy)))),
    }
}

/// Checks a password on the shared hashing threads (at most two at once).
pub(crate) async fn verify_blocking(
    ctx: &Ctx,
    password: String,
    phc: String,
) -> Result<bool, Fail> {
    password::verify_queued(password, phc)
        .await
        .map_err(|busy| Fail(Box::new(busy_page(ctx, &busy))))
}

/// 503 with a Retry-After: every hashing thread is taken.
fn busy_page(ctx: &Ctx, busy: &password::Busy) -> Response {
    tracing::warn!(peer = %ctx.peer, "console: {busy}");
    let body = html! {
        h1 { (ctx.t("系统繁忙", "Busy")) }
        p.error role="alert" { (ctx.t(
            "正在核对其他登录的密码，请几秒后再试。",
            "Other sign-ins are being checked; try again in a few seconds."
        )) }
    };
    let mut r = layout::page(ctx, ctx.t("系统繁忙", "Busy"), body);
    *r.status_mut() = axum::http::StatusCode::SERVICE_UNAVAILABLE;
    r.headers_mut()
        .insert(header::RETRY_AFTER, header::HeaderValue::from_static("5"));
    r
}

#[derive(Deserialize)]
pub struct LoginQuery {
    #[serde(default)]
    next: String,
}

fn login_page(ctx: &Ctx, name: &str, next: &str, problem: Option<&str>) -> Response {
    let (pre, fresh) = pre_token(ctx);
    let body = html! {
        h1 { (ctx.t("登录", "Sign in")) }
        @if let Some(p) = problem { p.error role="alert" { (p) } }
        @if ctx.app.setup.is_open() {
            p.muted { (ctx.t(
                "还没有账号：请使用网关日志中的一次性设置链接创建第一个物业经理账号。",
                "No account yet: open the one-time setup link from the gateway's log to create the first manager."
            )) }
        }
        section.box {
            form.grid method="post" action="/login" {
                input type="hidden" name=(CSRF_FIELD) value=(pre);
                input type="hidden" name="next" value=(next);
                (layout::input(ctx.t("账号名", "Account name"), "name", name, "text", None))
                (layout::input(ctx.t("密码", "Password"), "password", "", "password", None))
                div { button type="submit" id="login-submit" { (ctx.t("登录", "Sign in")) } }
            }
        }
    };
    let r = layout::page(ctx, ctx.t("登录", "Sign in"), body);
    with_pre(ctx, r, &pre, fresh)
}

pub async fn login_form(ctx: Ctx, Query(q): Query<LoginQuery>) -> Response {
    if let Some(u) = &ctx.user {
        return see_other(local_path(&q.next).unwrap_or(home_for(u)));
    }
    login_page(&ctx, "", &q.next, None)
}

#[derive(Deserialize)]
pub struct LoginForm {
    name: String,
    password: String,
    #[serde(default)]
    next: String,
}

/// Signs in: the attempt is counted (per address and per account) before
/// the password is hashed, and hashed on the shared threads; when they are
/// all taken the attempt is refused with 503 and not counted.
pub async fn login(PrePosted { ctx, form }: PrePosted<LoginForm>) -> Page {
    let now = Instant::now();
    let attempt = match ctx.app.limiter.attempt(&ctx.peer, &form.name, now) {
        Ok(attempt) => attempt,
        Err(wait) => {
            let seconds = wait.as_secs().max(1);
            let text = match (ctx.lang, seconds) {
                (Lang::Zh, s) if s < 60 => format!("登录尝试过于频繁，请 {s} 秒后再试。"),
                (Lang::Zh, s) => format!("登录失败次数过多，请 {} 分钟后再试。", s.div_ceil(60)),
                (Lang::En, s) if s < 60 => {
                    format!("Too many sign-in attempts; try again in {s} second(s).")
                }
                (Lang::En, s) => format!(
                    "Too many failed sign-ins; try again in {} minute(s).",
                    s.div_ceil(60)
                ),
            };
            let (tried, peer) = (form.name.clone(), ctx.peer.clone());
            ctx.store(move |s| accounts::record_failed_login(s, &tried, &peer, "rate limited"))
                .await?
                .map_err(|e| ctx.internal(&e))?;
            let mut r = login_page(&ctx, &form.name, &form.next, Some(&text));
            *r.status_mut() = axum::http::StatusCode::TOO_MANY_REQUESTS;
            if let Ok(v) = header::HeaderValue::from_str(&seconds.to_string()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            return Ok(r);
        }
    };
    let tried = form.name.trim().to_string();
    let lookup = tried.clone();
    let found = ctx
        .read(move |conn| accounts::credentials(conn, &lookup))
        .await?
        .map_err(|e| ctx.internal(&e))?;
    let hash = found
        .as_ref()
        .map(|c| c.password_hash.clone())
        .unwrap_or_else(|| password::decoy().to_string());
    let matches = match password::verify_queued(form.password.clone(), hash).await {
        Ok(matches) => matches,
        Err(busy) => {
            ctx.app.limiter.uncount(attempt);
            return Ok(busy_page(&ctx, &busy));
        }
    };
    let account = match found {
        Some(c) if matches && !c.account.disabled => c.account,
        other => {
            let why = match other {
                None => "unknown account",
                Some(c) if c.account.disabled => "account disabled",
                Some(_) => "wrong password",
            };
            let peer = ctx.peer.clone();
            ctx.store(move |s| accounts::record_failed_login(s, &tried, &peer, why))
                .await?
                .map_err(|e| ctx.internal(&e))?;
            let text = ctx.t(
                "账号或密码错误，或账号已停用。",
                "Wrong account name or password, or the account is disabled.",
            );
            let mut r = login_page(&ctx, &form.name, &form.next, Some(text));
            *r.status_mut() = axum::http::StatusCode::UNAUTHORIZED;
            return Ok(r);
        }
    };
    ctx.app.limiter.succeeded(attempt);
    let (peer, who) = (ctx.peer.clone(), account.name.clone());
    ctx.store(move |s| accounts::record_login(s, &who, &peer))
        .await?
        .map_err(|e| ctx.internal(&e))?;
    let user_home = match account.role {
        accounts::ConsoleRole::Manager => "/residents",
        accounts::ConsoleRole::Guard => "/live",
        accounts::ConsoleRole::Auditor => "/log",
    };
    let to = local_path(&form.next)
        .filter(|p| !p.starts_with("/login") && !p.starts_with("/setup"))
        .unwrap_or(user_home);
    Ok(signed_in(&ctx, &account.name, account.role, to))
}

#[derive(Deserialize)]
pub struct Nothing {}

pub async fn logout(Posted { ctx, user, .. }: Posted<Nothing>) -> Page {
    ctx.app.sessions.end(&user.key);
    let actor = user.actor();
    ctx.store(move |s| crate::store::Store::audit(s.conn(), &actor, "console.logout", None, None))
        .await?
        .map_err(|e| ctx.internal(&e))?;
    let mut r = see_other("/login");
    r.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, "", ctx.app.secure, Some(0)),
    );
    Ok(r)
}

#[derive(Deserialize)]
pub struct LangQuery {
    #[serde(default)]
    back: String,
}

pub async fn switch_lang(
    axum::extract::State(app): axum::extract::State<AppRef>,
    Path(code): Path<String>,
    Query(q): Query<LangQuery>,
) -> Response {
    let lang = Lang::from_code(&code).unwrap_or_default();
    let mut r = see_other(local_path(&q.back).unwrap_or("/"));
    r.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(i18n::COOKIE, lang.code(), app.secure, Some(365 * 86400)),
    );
    r.into_response()
}
