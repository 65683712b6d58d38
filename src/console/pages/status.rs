//! Device status: each gate (lock, door, reader health, alarms), cameras
//! (live state, card + face, the stranger false-accept rate),
//! the uplink (broker, outbox backlog), disk space, the register and the face models.

use maud::html;

use crate::console::auth::Perm;
use crate::console::layout;
use crate::console::web::{Ctx, Page};
use crate::door::Position;
use crate::models::{self, Manifest, VerifyOutcome};

/// A camera source without any `user:password@` it carries.
pub fn redact_source(source: &str) -> String {
    match (source.find("://"), source.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}***@{}", &source[..scheme + 3], &source[at + 1..])
        }
        _ => source.to_string(),
    }
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// (model name, role, state) for the configured detector and embedder.
fn model_states(config: &crate::config::Config) -> Vec<(String, String, Result<String, String>)> {
    let manifest = match Manifest::for_config(config) {
        Ok(m) => m,
        Err(e) => return vec![("manifest".into(), String::new(), Err(format!("{e:#}")))],
    };
    let dir = config.models_dir();
    [&config.models.detector, &config.models.embedder]
        .into_iter()
        .map(|name| match manifest.get(name) {
            Err(e) => (name.clone(), String::new(), Err(format!("{e:#}"))),
            Ok(spec) => {
                let role = format!("{:?}", spec.role).to_lowercase();
                let state = match models::verify(spec, &dir) {
                    Ok(VerifyOutcome::Ok) => {
                        Ok(format!("{} (sha256 {}…)", spec.file, &spec.sha256[..12]))
                    }
                    Ok(VerifyOutcome::Missing(p)) => {
                        Err(format!("not installed at {}", p.display()))
                    }
                    Ok(VerifyOutcome::Mismatch { path, .. }) => {
                        Err(format!("{} does not match its checksum", path.display()))
                    }
                    Err(e) => Err(format!("{e:#}")),
                };
                (name.clone(), role, state)
            }
        })
        .collect()
}

pub async fn show(ctx: Ctx) -> Page {
    ctx.need(Perm::Status)?;
    let l = ctx.lang;
    let gates = ctx.app.handle.status().await;
    let config = ctx.app.config.clone();
    let data_dir = config.data_dir().to_path_buf();
    let db = config.database_path();
    let (free, db_size, models) = tokio::task::spawn_blocking(move || {
        let free = crate::uplink::status::disk_free_bytes(&data_dir);
        let db_size = std::fs::metadata(&db).map(|m| m.len()).ok();
        (free, db_size, model_states(&config))
    })
    .await
    .map_err(|e| ctx.internal(&anyhow::anyhow!("status task failed: {e}")))?;
    // The same figures as `gatehouse uplink status`.
    let (outbox, dropped) = ctx
        .read(|conn| {
            Ok((
                crate::store::outbox::depth(conn)?,
                crate::store::outbox::dropped_total(conn)?,
            ))
        })
        .await?
        .map_err(|e| ctx.internal(&e))?;
    let register = ctx.app.handle.register();
    let site = super::site::section(&ctx).await?;
    let offset = ctx.app.config.site.utc_offset_minutes;
    let position = |p: Position| match p {
        Position::Open => l.t("开", "open"),
        Position::Closed => l.t("关", "closed"),
        Position::Unknown => l.t("未知", "unknown"),
    };
    let body = html! {
        h1 { (l.t("设备状态", "Device status")) }
        h2 { (l.t("门", "Gates")) }
        div.table-wrap {
            table id="gate-status" {
                thead { tr {
                    th { (l.t("门", "Gate")) } th { (l.t("锁", "Lock")) } th { (l.t("门磁", "Door")) }
                    th { (l.t("读卡器", "Reader")) } th { (l.t("报警", "Alarms")) } th { (l.t("后端", "Backend")) }
                } }
                tbody {
                    @for g in &gates {
                        tr {
                            td { (g.name) " " span.muted { (g.id) } }
                            td {
                                @if let Some(why) = &g.out_of_service { span.pill.bad { (l.t("停用", "out of service")) } " " (why) }
                                @else if g.lock == "released" { span.pill.good { (l.t("已开", "released")) } }
                                @else { (l.t("已锁", "locked")) }
                            }
                            td { (position(g.door)) @if g.vehicle_present == Some(true) { " · " (l.t("有车", "vehicle present")) } }
                            td {
                                @match &g.reader {
                                    None => span.muted { "-" },
                                    Some(r) => {
                                        @if r.health.faulted { span.pill.bad { (l.t("故障", "fault")) } " " }
                                        @if let Some(s) = r.locked_out_s { span.pill.bad { (l.t("锁定", "locked out")) " " (s) "s" } " " }
                                        (l.t("正常帧", "ok")) " " (r.health.counters.frames_ok) " · "
                                        (l.t("校验错", "parity")) " " (r.health.counters.parity_errors) " · "
                                        (l.t("长度错", "length")) " " (r.health.counters.length_errors) " · "
                                        (l.t("噪声", "noise")) " " (r.health.counters.noise)
                                    }
                                }
                            }
                            td {
                                @for a in &g.alarms { span.pill.bad { (l.reason(a.as_str())) } " " }
                                @if g.tamper { span.pill.bad { (l.reason("tamper")) } }
                            }
                            td.muted { (format!("{:?}", g.backend).to_lowercase()) }
                        }
                    }
                }
            }
        }
        (site)
        h2 { (l.t("摄像头", "Cameras")) }
        @if ctx.app.config.cameras.is_empty() { p.muted { (l.t("未配置。", "None configured.")) } }
        @else {
            div.table-wrap { table id="camera-status" {
                thead { tr {
                    th { "ID" } th { (l.t("门", "Gate")) } th { (l.t("来源", "Source")) } th { (l.t("最大帧率", "Max fps")) }
                    th { (l.t("状态", "State")) } th { (l.t("刷卡+刷脸", "Card + face")) }
                } }
                tbody { @for c in &ctx.app.config.cameras {
                    @let gate = gates.iter().find(|g| g.id == c.gate.as_str());
                    @let state = gate
                        .and_then(|g| g.face.as_ref())
                        .and_then(|f| f.cameras.iter().find(|(id, _)| *id == c.id))
                        .map(|(_, s)| s.as_str());
                    tr {
                        td { (c.id) } td { (c.gate) } td { (redact_source(&c.source)) } td { (c.max_fps) }
                        td {
                            @match state {
                                Some("streaming") => span.pill.good { (l.t("正常", "streaming")) },
                                Some(other) => span.pill.bad { (other) },
                                None => span.pill.bad { (l.t("人脸识别未运行", "face recognition not running")) },
                            }
                        }
                        td {
                            @match gate.and_then(|g| g.two_factor.as_ref()) {
                                Some(rule) => {
                                    @if rule == "household" { (l.t("户号+刷脸", "household + face")) } @else { (rule) }
                                    " · "
                                    @if gate.is_some_and(|g| g.two_factor_now) { (l.t("现在生效", "in force now")) }
                                    @else { (l.t("现在不生效", "not now")) }
                                },
                                None => span.muted { (l.t("关", "off")) },
                            }
                        }
                    }
                } }
            } }
            @if let Some(face) = gates.iter().find_map(|g| g.face.as_ref()) {
                p id="stranger-risk" {
                    @if face.over_target { span.pill.bad { (l.t("陌生人误识率超标", "stranger rate over target")) } " " }
                    (l.t("人脸库", "Face register")) ": " (face.gallery_residents) " " (l.t("人", "resident(s)"))
                    @if let Some(t) = face.threshold {
                        " · " (l.t("阈值", "threshold")) " " (format!("{t:.3}"))
                        @if let Some(src) = &face.threshold_source {
                            @if src.starts_with("self-calibrated") { " (" (l.t("自校准", "self-calibrated")) ")" }
                            @else { " (" (l.t("配置值", "configured")) ")" }
                        }
                    }
                    @if let Some(p) = face.stranger_fpir {
                        " · " (l.t("陌生人被误认为住户的概率（每次确认）", "chance a stranger is taken for a resident (per confirmed face)"))
                        " " (crate::face::calibrate::percent(p))
                        @if let Some(u) = face.stranger_fpir_upper.filter(|u| *u > p) {
                            " (" (l.t("95% 置信上限", "95 % bound")) " " (crate::face::calibrate::percent(u)) ")"
                        }
                        @if let Some(t) = face.target_fpir { " (" (l.t("目标", "target")) " " (crate::face::calibrate::percent(t)) ")" }
                    }
                    @if let Some(source) = &face.tail_source {
                        br;
                        span.muted.tail-basis {
                            (l.t("依据", "Resting on")) ": "
                            @match source.as_str() {
                                "own register" => (l.t("本社区人脸库内不同住户之间的比对", "comparisons between this site's own residents")),
                                "model prior" => (l.t("模型先验（在他人人脸上测得，待本社区人脸库足够大后替换）", "the model's prior, measured on other people's faces until this register is large enough")),
                                _ => (l.t("少量照片拟合的高斯尾部（外推，无置信界）", "a Gaussian tail fitted to a few photos (an extrapolation, no confidence bound)")),
                            }
                            @if let Some(n) = face.tail_comparisons.filter(|n| *n > 0) { " · " (n) " " (l.t("次比对", "comparisons")) }
                            @if let Some(m) = face.max_residents {
                                " · " (l.t("数据可支撑的人数上限", "register size the data vouches for")) " "
                                @if m == u64::MAX { "∞" } @else { (m) }
                            }
                        }
                    }
                    @if face.over_target { br; span.muted { (face.stranger_risk.clone().unwrap_or_default()) } }
                }
            }
        }
        h2 { (l.t("系统", "System")) }
        section.box {
            dl.facts {
                dt { (l.t("版本", "Version")) } dd { "gatehouse " (env!("CARGO_PKG_VERSION")) }
                dt { (l.t("控制台启动", "Console started")) } dd { (layout::local_instant(ctx.app.started_at, offset)) }
                dt { (l.t("登记人数", "Register")) } dd { (register.person_count()) " " (l.t("人", "person(s)")) }
                dt { (l.t("数据库", "Database")) } dd { (ctx.app.config.database_path().display()) " · " (db_size.map(human_bytes).unwrap_or_else(|| "?".into())) }
                dt { (l.t("剩余磁盘", "Free disk")) } dd id="disk-free" { (free.map(human_bytes).unwrap_or_else(|| "?".into())) }
                dt { (l.t("上行（派出所）", "Uplink (station)")) } dd {
                    @match &ctx.app.config.uplink.broker {
                        Some(b) => (redact_source(b)),
                        None => span.muted { (l.t("未配置，事件保存在本地待发队列", "not configured; events wait in the local outbox")) },
                    }
                }
                dt { (l.t("待发事件", "Outbox")) } dd id="outbox" {
                    (outbox.events) " " (l.t("条", "event(s)")) " · " (human_bytes(outbox.bytes))
                    @if dropped > 0 { " · " span.pill.bad { (l.t("因超额丢弃", "dropped over quota")) " " (dropped) } }
                }
            }
        }
        h2 { (l.t("人脸模型", "Face models")) }
        div.table-wrap { table id="model-status" {
            thead { tr { th { (l.t("模型", "Model")) } th { (l.t("用途", "Role")) } th { (l.t("状态", "State")) } } }
            tbody { @for (name, role, state) in &models {
                tr { td { (name) } td { (role) } td {
                    @match state {
                        Ok(s) => { span.pill.good { (l.t("已安装", "installed")) } " " (s) },
                        Err(e) => { span.pill.bad { (l.t("有问题", "problem")) } " " (e) },
                    }
                } }
            } }
        } }
    };
    Ok(layout::page(&ctx, l.t("设备", "Devices"), body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn camera_and_broker_credentials_are_not_shown() {
        assert_eq!(
            redact_source("rtsp://admin:s3cret@192.168.1.64:554/Streaming/1"),
            "rtsp://***@192.168.1.64:554/Streaming/1"
        );
        assert_eq!(redact_source("/dev/video0"), "/dev/video0");
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(3 * 1024 * 1024), "3.0 MiB");
    }
}
