//! The spreadsheet import (the same `enrol::import` as `gatehouse import
//! residents`): upload a CSV, optionally as a dry run or skipping bad rows,
//! and get the line-by-line report.

use maud::{html, Markup};

use crate::console::auth::Perm;
use crate::console::layout::{self, csrf};
use crate::console::web::{Ctx, Page, Uploaded};
use crate::enrol::import::{import_residents, ImportOptions, ImportReport};

fn upload_form(ctx: &Ctx) -> Markup {
    let l = ctx.lang;
    let Some(me) = ctx.user.as_ref() else {
        return html! {};
    };
    html! {
        section.box {
            p { (l.t(
                "CSV 文件，第一行为表头：name,id_number,phone,building,unit,room,role,valid_until,card,plate（也可用中文表头：姓名、身份证号……）。支持 UTF-8 和 Excel 另存的 GB18030。默认全部成功才写入。",
                "A CSV file with a header row: name,id_number,phone,building,unit,room,role,valid_until,card,plate (Chinese headers such as 姓名, 身份证号 work too). UTF-8 or GB18030 as Excel saves it. By default nothing is written unless every row is good."
            )) }
            form.grid method="post" action="/import" enctype="multipart/form-data" data-wait="wait-import" id="import-form" {
                (csrf(me))
                label { span { (l.t("文件", "File")) } input type="file" name="file" accept=".csv,text/csv" required; }
                label.check { input type="checkbox" name="dry_run" value="1"; span { (l.t("只检查，不写入", "Check only, write nothing")) } }
                label.check { input type="checkbox" name="skip_invalid" value="1"; span { (l.t("跳过有问题的行，导入其余", "Skip bad rows, import the rest")) } }
                div { button type="submit" id="import-submit" { (l.t("导入", "Import")) } }
            }
            p.wait id="wait-import" role="status" { (l.t("正在导入……", "Importing…")) }
        }
    }
}

pub async fn form_page(ctx: Ctx) -> Page {
    ctx.need(Perm::Import)?;
    let title = ctx.t("导入住户表", "Import residents");
    let body = html! { h1 { (title) } (upload_form(&ctx)) };
    Ok(layout::page(&ctx, title, body))
}

fn report(ctx: &Ctx, file: &str, r: &ImportReport) -> Markup {
    let l = ctx.lang;
    let outcome = if r.committed {
        l.t("已写入。", "Written.")
    } else if r.dry_run {
        l.t("只检查，未写入。", "Checked only; nothing was written.")
    } else if !r.errors.is_empty() {
        l.t(
            "有问题，未写入任何内容。请修改文件，或选择跳过有问题的行。",
            "Problems found; nothing was written. Fix the file, or choose to skip bad rows.",
        )
    } else {
        l.t("没有需要修改的内容。", "Nothing to change.")
    };
    let ok = r.errors.is_empty() || r.committed;
    html! {
        section.box id="import-report" {
            h2 { (file) " · " (r.encoding) " · " (r.rows) " " (l.t("行", "row(s)")) }
            p class=(if ok { "flash ok" } else { "flash error" }) { (outcome) }
            dl.facts {
                dt { (l.t("新增", "Added")) } dd { (r.added) }
                dt { (l.t("更新", "Updated")) } dd { (r.updated) }
                dt { (l.t("不变", "Unchanged")) } dd { (r.unchanged) }
                dt { (l.t("新增门禁卡", "Cards added")) } dd { (r.cards_added) }
                dt { (l.t("新增车辆", "Vehicles added")) } dd { (r.vehicles_added) }
                @if r.skipped > 0 { dt { (l.t("跳过的行", "Rows skipped")) } dd { (r.skipped) } }
            }
        }
        @if !r.errors.is_empty() {
            h2 { (l.t("逐行问题", "Problems, line by line")) }
            div.table-wrap {
                table id="import-errors" {
                    thead { tr { th { (l.t("行", "Line")) } th { (l.t("列", "Column")) } th { (l.t("问题", "Problem")) } } }
                    tbody { @for e in &r.errors { tr { td { (e.line) } td { (e.column) } td { (e.problem) } } } }
                }
            }
        }
    }
}

pub async fn run(up: Uploaded) -> Page {
    let Uploaded {
        ctx,
        user,
        fields,
        files,
    } = up;
    ctx.need(Perm::Import)?;
    let title = ctx.t("导入住户表", "Import residents");
    let Some(file) = files.into_iter().find(|f| f.field == "file") else {
        let body = html! {
            h1 { (title) }
            p.error { (ctx.t("请选择一个 CSV 文件。", "Choose a CSV file.")) }
            (upload_form(&ctx))
        };
        return Ok(layout::page(&ctx, title, body));
    };
    let opts = ImportOptions {
        dry_run: fields.contains_key("dry_run"),
        skip_invalid: fields.contains_key("skip_invalid"),
    };
    let actor = user.actor();
    let name: String = file
        .file_name
        .chars()
        .filter(|c| !c.is_control())
        .take(100)
        .collect();
    let source = name.clone();
    // The import holds the writer connection for its one transaction (a
    // 50,000-row file takes a few seconds); gates queue their events meanwhile.
    let result = ctx
        .store(move |s| import_residents(s, &actor, &source, &file.bytes, opts, &mut |_, _| {}))
        .await?;
    let body = match result {
        Ok(r) => {
            if r.committed {
                tracing::info!(file = %name, added = r.added, updated = r.updated, account = %user.name, "console: residents imported");
            }
            html! { h1 { (title) } (report(&ctx, &name, &r)) (upload_form(&ctx)) }
        }
        Err(e) => html! {
            h1 { (title) }
            p.error id="import-failed" { (name) ": " (format!("{e:#}")) }
            (upload_form(&ctx))
        },
    };
    Ok(layout::page(&ctx, title, body))
}
