//! The request side shared by every page: cookies, the request context
//! (language, signed-in account, peer), the form extractors that refuse a
//! post without its CSRF token, and the error pages.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Instant;

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Multipart, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::de::DeserializeOwned;

use super::auth::{same_secret, Perm, User};
use super::i18n::{self, Lang};
use super::layout;
use super::AppRef;

pub const SESSION_COOKIE: &str = "gh_session";
/// Double-submit token for the forms shown before sign-in (login, setup).
pub const PRE_COOKIE: &str = "gh_pre";
/// The hidden field every form carries.
pub const CSRF_FIELD: &str = "_csrf";
/// Largest urlencoded form body.
const FORM_LIMIT: usize = 64 * 1024;
/// Largest upload (spreadsheet, photos).
pub const UPLOAD_LIMIT: usize = 16 * 1024 * 1024;

/// What a handler returns.
pub type Page = Result<Response, Fail>;

/// An error page (or redirect) ready to send.
#[derive(Debug)]
pub struct Fail(pub Box<Response>);

impl IntoResponse for Fail {
    fn into_response(self) -> Response {
        *self.0
    }
}

/// The value of cookie `name` in the request.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().to_string())
}

/// A `Set-Cookie` value: path `/`, `SameSite=Strict`, `HttpOnly`, `Secure`
/// over TLS; `max_age` `None` lasts the browser session.
pub fn set_cookie(name: &str, value: &str, secure: bool, max_age: Option<i64>) -> HeaderValue {
    let mut c = format!("{name}={value}; Path=/; SameSite=Strict; HttpOnly");
    if secure {
        c.push_str("; Secure");
    }
    if let Some(age) = max_age {
        c.push_str(&format!("; Max-Age={age}"));
    }
    HeaderValue::from_str(&c).unwrap_or_else(|_| HeaderValue::from_static("invalid=1"))
}

/// A local path to come back to (`/residents?q=1`), never another site.
pub fn local_path(p: &str) -> Option<&str> {
    let ok = p.starts_with('/')
        && !p.starts_with("//")
        && !p.contains('\\')
        && !p.chars().any(char::is_control);
    ok.then_some(p)
}

/// 303 to `to` (after a post).
pub fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

/// Everything a page needs to know about its request.
#[derive(Clone)]
pub struct Ctx {
    pub app: AppRef,
    pub lang: Lang,
    pub user: Option<User>,
    /// The peer's address, for the sign-in limit and the audit log.
    pub peer: String,
    /// Path and query of this request (the language switch returns here).
    pub path: String,
    pub pre_token: Option<String>,
}

impl FromRequestParts<AppRef> for Ctx {
    type Rejection = Fail;

    async fn from_request_parts(parts: &mut Parts, app: &AppRef) -> Result<Ctx, Fail> {
        let lang = cookie(&parts.headers, i18n::COOKIE)
            .and_then(|c| Lang::from_code(&c))
            .unwrap_or_default();
        let user = cookie(&parts.headers, SESSION_COOKIE)
            .and_then(|token| app.sessions.touch(&token, Instant::now()));
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip().to_string())
            .unwrap_or_else(|| "unknown".into());
        let path = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/".into());
        Ok(Ctx {
            app: app.clone(),
            lang,
            user,
            peer,
            path,
            pre_token: cookie(&parts.headers, PRE_COOKIE),
        })
    }
}

impl Ctx {
    pub fn t(&self, zh: &'static str, en: &'static str) -> &'static str {
        self.lang.t(zh, en)
    }

    /// The signed-in account if it may `perm`; otherwise the sign-in page or 403.
    pub fn need(&self, perm: Perm) -> Result<User, Fail> {
        match &self.user {
            None => Err(self.sign_in()),
            Some(u) if u.may(perm) => Ok(u.clone()),
            Some(_) => Err(self.forbidden()),
        }
    }

    pub fn sign_in(&self) -> Fail {
        let next = urlencode(&self.path);
        Fail(Box::new(see_other(&format!("/login?next={next}"))))
    }

    fn error_page(&self, status: StatusCode, title: &str, text: &str) -> Fail {
        let body = html! {
            h1 { (title) }
            p.error { (text) }
            p { a href="/" { (self.t("返回首页", "Back to the start page")) } }
        };
        let mut r = layout::page(self, title, body);
        *r.status_mut() = status;
        Fail(Box::new(r))
    }

    pub fn forbidden(&self) -> Fail {
        self.error_page(
            StatusCode::FORBIDDEN,
            self.t("无权访问", "Not allowed"),
            self.t(
                "您的账号角色不能使用此页面。",
                "Your account's role may not use this page.",
            ),
        )
    }

    pub fn not_found(&self) -> Fail {
        self.error_page(
            StatusCode::NOT_FOUND,
            self.t("未找到", "Not found"),
            self.t("没有这个页面或记录。", "There is no such page or record."),
        )
    }

    pub fn bad_request(&self, why: impl std::fmt::Display) -> Fail {
        self.error_page(
            StatusCode::BAD_REQUEST,
            self.t("请求有误", "Bad request"),
            &why.to_string(),
        )
    }

    pub fn csrf_refused(&self) -> Fail {
        self.error_page(
            StatusCode::FORBIDDEN,
            self.t("表单已失效", "Form refused"),
            self.t(
                "表单缺少或带有错误的安全令牌（CSRF）。请重新打开页面再提交。",
                "The form was posted without its security (CSRF) token or with a wrong one. Reload the page and submit again.",
            ),
        )
    }

    /// A failure of the gateway itself: logged, and shown.
    pub fn internal(&self, e: &anyhow::Error) -> Fail {
        tracing::error!(path = %self.path, "console: {e:#}");
        self.error_page(
            StatusCode::INTERNAL_SERVER_ERROR,
            self.t("出错了", "Something went wrong"),
            &format!("{e:#}"),
        )
    }

    /// Runs `f` on a read-only connection, for reads that write nothing (not
    /// even an audit row): it never waits for the writer nor delays a gate's
    /// event, however long it takes (a CSV export of 100,000 events).
    pub async fn read<R: Send + 'static>(
        &self,
        f: impl FnOnce(&rusqlite::Connection) -> anyhow::Result<R> + Send + 'static,
    ) -> Result<anyhow::Result<R>, Fail> {
        self.app.handle.read(f).await.map_err(|e| self.internal(&e))
    }

    /// Runs `f` on the daemon's database connection (the single writer),
    /// then has the gates pick up any register change at once (instead of
    /// at the watcher's next poll), so a card assigned here opens the gate
    /// on the next swipe.
    pub async fn store<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut crate::store::Store) -> anyhow::Result<R> + Send + 'static,
    ) -> Result<anyhow::Result<R>, Fail> {
        let result = self
            .app
            .handle
            .with_store(f)
            .await
            .map_err(|e| self.internal(&e))?;
        if let Err(e) = self.app.handle.reload_register(false).await {
            tracing::error!(
                "register reload after a console change failed (the watcher retries): {e:#}"
            );
        }
        Ok(result)
    }

    /// Shows `text` on the next page of this session.
    pub fn flash(&self, ok: bool, text: impl Into<String>) {
        if let Some(u) = &self.user {
            self.app.sessions.flash(&u.key, ok, text);
        }
    }
}

/// Percent-encodes a query value.
pub fn urlencode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn check_token(ctx: &Ctx, pairs: &[(String, String)], expected: Option<&str>) -> Result<(), Fail> {
    let given = pairs
        .iter()
        .find(|(k, _)| k == CSRF_FIELD)
        .map(|(_, v)| v.as_str());
    match (given, expected) {
        (Some(g), Some(e)) if same_secret(g, e) => Ok(()),
        _ => {
            tracing::warn!(path = %ctx.path, peer = %ctx.peer, "console: form refused: missing or wrong CSRF token");
            Err(ctx.csrf_refused())
        }
    }
}

async fn read_form(
    req: Request,
    app: &AppRef,
) -> Result<(Ctx, Vec<(String, String)>, axum::body::Bytes), Fail> {
    let (mut parts, body) = req.into_parts();
    let ctx = Ctx::from_request_parts(&mut parts, app).await?;
    let bytes = axum::body::to_bytes(body, FORM_LIMIT)
        .await
        .map_err(|_| ctx.bad_request("the form is too large"))?;
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_bytes(&bytes).map_err(|e| ctx.bad_request(e))?;
    Ok((ctx, pairs, bytes))
}

/// A form posted by a signed-in account, with its CSRF token checked.
pub struct Posted<T> {
    pub ctx: Ctx,
    pub user: User,
    pub form: T,
    /// Every field in order (repeated names, e.g. checkboxes, appear repeatedly).
    pub pairs: Vec<(String, String)>,
}

impl<T: DeserializeOwned> FromRequest<AppRef> for Posted<T> {
    type Rejection = Fail;

    async fn from_request(req: Request, app: &AppRef) -> Result<Self, Fail> {
        let (ctx, pairs, bytes) = read_form(req, app).await?;
        let Some(user) = ctx.user.clone() else {
            return Err(ctx.sign_in());
        };
        check_token(&ctx, &pairs, Some(&user.csrf))?;
        let form = serde_urlencoded::from_bytes(&bytes).map_err(|e| ctx.bad_request(e))?;
        Ok(Posted {
            ctx,
            user,
            form,
            pairs,
        })
    }
}

/// A form posted before sign-in (login, first setup), checked against the
/// `gh_pre` cookie the page set (double submit).
pub struct PrePosted<T> {
    pub ctx: Ctx,
    pub form: T,
}

impl<T: DeserializeOwned> FromRequest<AppRef> for PrePosted<T> {
    type Rejection = Fail;

    async fn from_request(req: Request, app: &AppRef) -> Result<Self, Fail> {
        let (ctx, pairs, bytes) = read_form(req, app).await?;
        check_token(&ctx, &pairs, ctx.pre_token.as_deref())?;
        let form = serde_urlencoded::from_bytes(&bytes).map_err(|e| ctx.bad_request(e))?;
        Ok(PrePosted { ctx, form })
    }
}

/// A file in a multipart form.
pub struct Upload {
    pub field: String,
    pub file_name: String,
    pub bytes: Vec<u8>,
}

/// A multipart form (uploads) posted by a signed-in account, CSRF checked.
pub struct Uploaded {
    pub ctx: Ctx,
    pub user: User,
    pub fields: HashMap<String, String>,
    pub files: Vec<Upload>,
}

impl FromRequest<AppRef> for Uploaded {
    type Rejection = Fail;

    async fn from_request(req: Request, app: &AppRef) -> Result<Self, Fail> {
        let (mut parts, body) = req.into_parts();
        let ctx = Ctx::from_request_parts(&mut parts, app).await?;
        let Some(user) = ctx.user.clone() else {
            return Err(ctx.sign_in());
        };
        let req = Request::from_parts(parts, body);
        let mut multipart = Multipart::from_request(req, app)
            .await
            .map_err(|e| ctx.bad_request(e.body_text()))?;
        let mut fields = HashMap::new();
        let mut files = Vec::new();
        while let Some(field) = multipart
            .next_field()
            .await
            .map_err(|e| ctx.bad_request(e.body_text()))?
        {
            let name = field.name().unwrap_or_default().to_string();
            match field.file_name().map(str::to_string) {
                Some(file_name) => {
                    let bytes = field
                        .bytes()
                        .await
                        .map_err(|e| ctx.bad_request(e.body_text()))?;
                    if !file_name.is_empty() || !bytes.is_empty() {
                        files.push(Upload {
                            field: name,
                            file_name,
                            bytes: bytes.to_vec(),
                        });
                    }
                }
                None => {
                    let text = field
                        .text()
                        .await
                        .map_err(|e| ctx.bad_request(e.body_text()))?;
                    fields.insert(name, text);
                }
            }
        }
        let pairs: Vec<(String, String)> = fields
            .get(CSRF_FIELD)
            .map(|v| vec![(CSRF_FIELD.to_string(), v.clone())])
            .unwrap_or_default();
        check_token(&ctx, &pairs, Some(&user.csrf))?;
        Ok(Uploaded {
            ctx,
            user,
            fields,
            files,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cookies_among_others() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; gh_lang=en; b=2"),
        );
        assert_eq!(cookie(&h, "gh_lang").as_deref(), Some("en"));
        assert_eq!(cookie(&h, "gh_session"), None);
    }

    #[test]
    fn only_local_paths_are_followed_after_sign_in() {
        assert_eq!(local_path("/residents?q=1"), Some("/residents?q=1"));
        assert_eq!(local_path("//evil.example/"), None);
        assert_eq!(local_path("https://evil.example/"), None);
        assert_eq!(local_path("/\\evil"), None);
    }

    #[test]
    fn cookies_are_strict_and_http_only() {
        let c = set_cookie("gh_session", "abc", true, None);
        let c = c.to_str().unwrap();
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Strict") && c.contains("Secure"));
        assert_eq!(urlencode("/a b?x=住"), "%2Fa%20b%3Fx%3D%E4%BD%8F");
    }
}
