//! The page shell (head, navigation for the account's role, language switch,
//! flash message) and small form helpers, rendered with maud so every value
//! is HTML-escaped.

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, FixedOffset, Utc};
use maud::{html, Markup, PreEscaped, DOCTYPE};

use super::auth::{Perm, User};
use super::web::{urlencode, Ctx, CSRF_FIELD};
use crate::store::console::ConsoleRole;

/// Navigation: path, Chinese, English, what it needs.
const NAV: &[(&str, &str, &str, Perm)] = &[
    ("/residents", "住户", "Residents", Perm::Register),
    ("/households", "房屋", "Households", Perm::Register),
    ("/vehicles", "车辆", "Vehicles", Perm::Register),
    ("/visitors", "访客", "Visitors", Perm::Visitors),
    ("/live", "实时", "Live", Perm::LiveEvents),
    ("/log", "通行记录", "Entry log", Perm::Logs),
    ("/strangers", "未登记人员", "Strangers", Perm::Register),
    ("/audit", "审计", "Audit", Perm::Audit),
    ("/status", "设备", "Devices", Perm::Status),
    ("/import", "导入", "Import", Perm::Import),
    ("/accounts", "账号", "Accounts", Perm::Accounts),
];

/// The first page an account lands on.
pub fn home_for(user: &User) -> &'static str {
    match user.role {
        ConsoleRole::Manager => "/residents",
        ConsoleRole::Guard => "/live",
        ConsoleRole::Auditor => "/log",
    }
}

/// The hidden CSRF field of a form.
pub fn csrf(user: &User) -> Markup {
    html! { input type="hidden" name=(CSRF_FIELD) value=(user.csrf); }
}

/// A whole page.
pub fn page(ctx: &Ctx, title: &str, body: Markup) -> Response {
    let lang = ctx.lang;
    let site = &ctx.app.config.site.name;
    let user = ctx.user.as_ref();
    let switch = format!(
        "/lang/{}?back={}",
        lang.other().code(),
        urlencode(&ctx.path)
    );
    let doc = html! {
        (DOCTYPE)
        html lang=(lang.html()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · " (site) }
                link rel="stylesheet" href=(format!("/static/app.css?v={}", env!("CARGO_PKG_VERSION")));
                script src=(format!("/static/app.js?v={}", env!("CARGO_PKG_VERSION"))) defer {}
            }
            body {
                header.top {
                    a.site href="/" { (site) }
                    nav {
                        @if let Some(u) = user {
                            @for (path, zh, en, perm) in NAV {
                                @if u.may(*perm) {
                                    a href=(path) class=[ctx.path.starts_with(path).then_some("here")] { (lang.t(zh, en)) }
                                }
                            }
                        }
                    }
                    div.me {
                        a.lang href=(switch) { (lang.other().name()) }
                        @if let Some(u) = user {
                            a href="/account/password" title=(lang.t("修改密码", "Change password")) {
                                (u.name) " (" (lang.console_role(u.role)) ")"
                            }
                            form.inline method="post" action="/logout" {
                                (csrf(u))
                                button.link type="submit" { (lang.t("退出", "Sign out")) }
                            }
                        }
                    }
                }
                main {
                    @if let Some(f) = user.and_then(|u| u.flash.as_ref()) {
                        p class=(if f.ok { "flash ok" } else { "flash error" }) role="status" { (f.text) }
                    }
                    (body)
                }
            }
        }
    };
    let mut r = doc.into_response();
    // Pages show personal data: never cached.
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// A labelled text input.
pub fn input(label: &str, name: &str, value: &str, kind: &str, extra: Option<&str>) -> Markup {
    html! {
        label {
            span { (label) }
            input type=(kind) name=(name) value=(value) id=(format!("f-{name}"));
            @if let Some(hint) = extra { small { (hint) } }
        }
    }
}

/// A labelled select; `options` are (value, text).
pub fn select(label: &str, name: &str, options: &[(String, String)], selected: &str) -> Markup {
    html! {
        label {
            span { (label) }
            select name=(name) id=(format!("f-{name}")) {
                @for (value, text) in options {
                    option value=(value) selected[value == selected] { (text) }
                }
            }
        }
    }
}

/// Errors above a form.
pub fn problems(list: &[String]) -> Markup {
    html! {
        @if !list.is_empty() {
            ul.problems role="alert" {
                @for p in list { li { (p) } }
            }
        }
    }
}

/// A stored RFC 3339 instant in the site's local time (`2025-03-12 10:00:05`).
pub fn local_time(at: &str, offset_minutes: i32) -> String {
    let offset = FixedOffset::east_opt(offset_minutes * 60)
        .unwrap_or_else(|| FixedOffset::east_opt(0).expect("zero offset"));
    DateTime::parse_from_rfc3339(at)
        .map(|t| {
            t.with_timezone(&offset)
                .format("%Y-%m-%d %H:%M:%S")
                .to_string()
        })
        .unwrap_or_else(|_| at.to_string())
}

pub fn local_instant(at: DateTime<Utc>, offset_minutes: i32) -> String {
    local_time(
        &at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        offset_minutes,
    )
}

/// Inline SVG from a trusted renderer (the QR code).
pub fn svg(s: String) -> Markup {
    PreEscaped(s)
}
