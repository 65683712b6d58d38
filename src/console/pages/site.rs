//! The site part of the device page (issue 17): on a registry, every gate of
//! the site with the register entry it applied and how far behind that is;
//! on a gate, the entry it decides on and when it was applied (it keeps
//! deciding on it with the broker or the registry down).

use maud::{html, Markup};

use crate::config::SiteRole;
use crate::console::web::{Ctx, Fail};
use crate::store::site_gates::{self, GateSeen};
use crate::store::site_log::{self, Status};

/// The section, or nothing for a standalone gateway.
pub async fn section(ctx: &Ctx) -> Result<Markup, Fail> {
    let role = ctx.app.config.site.role;
    if role == SiteRole::Standalone {
        return Ok(html! {});
    }
    let (status, gates): (Status, Vec<GateSeen>) = ctx
        .read(move |conn| {
            let gates = if role == SiteRole::Registry {
                site_gates::gates(conn)?
            } else {
                Vec::new()
            };
            Ok((site_log::status(conn)?, gates))
        })
        .await?
        .map_err(|e| ctx.internal(&e))?;
    Ok(render(ctx, &status, &gates))
}

fn render(ctx: &Ctx, status: &Status, gates: &[GateSeen]) -> Markup {
    let l = ctx.lang;
    let head = status.seq;
    html! {
        h2 { (l.t("小区各门", "Site")) }
        p id="site-role" { (crate::site::describe(status)) }
        @if status.role == SiteRole::Registry.as_str() {
            @if gates.is_empty() {
                p.muted { (l.t("还没有门报告。", "No gate has reported yet.")) }
            } @else {
                div.table-wrap { table id="site-gates" {
                    thead { tr {
                        th { (l.t("门", "Gate")) } th { (l.t("已应用条目", "Applied entry")) }
                        th { (l.t("落后", "Lag")) } th { (l.t("应用时间", "Applied at")) }
                        th { (l.t("最近收到", "Last heard")) } th { (l.t("已收事件至", "Events stored through")) }
                    } }
                    tbody { @for g in gates {
                        @let lag = (head - g.applied_seq).max(0);
                        tr {
                            td { (g.gateway) }
                            td { (g.applied_seq) }
                            td {
                                @if lag == 0 { span.pill.good { "0" } }
                                @else { span.pill.bad { (lag) } }
                            }
                            td { (g.applied_at.as_deref().unwrap_or("-")) }
                            td { (g.heard_at.as_deref().unwrap_or("-")) }
                            td { "#" (g.events_seq) }
                        }
                    } }
                } }
            }
        }
    }
}
