//! Printing command results: aligned tables (by display width, so Chinese
//! names line up), JSON or CSV, chosen with `--format`.

use std::io::Write;

use anyhow::Result;
use serde::Serialize;
use unicode_width::UnicodeWidthStr;

/// The one `--format` (and `simulate --output`) of every command that prints
/// a result.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Columns aligned for the terminal (`text` is accepted too)
    #[default]
    #[value(alias = "text")]
    Table,
    /// JSON, for scripts
    Json,
    /// CSV with a header row, for spreadsheets
    Csv,
}

#[derive(clap::Args, Debug, Clone, Copy)]
pub struct FormatArg {
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

/// Rows of text cells under a header.
#[derive(Clone, Debug, Default)]
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

/// Columns of a terminal cell: East Asian wide characters count two.
pub fn width(s: &str) -> usize {
    UnicodeWidthStr::width(s)
}

/// One line per cell: tabs, newlines and other control characters become spaces.
fn clean(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

impl Table {
    pub fn new(headers: &[&str]) -> Table {
        Table {
            headers: headers.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    pub fn push(&mut self, row: Vec<String>) {
        debug_assert_eq!(row.len(), self.headers.len());
        self.rows.push(row);
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Columns padded to the widest cell, two spaces apart, no trailing blanks.
    pub fn render(&self) -> String {
        let rows: Vec<Vec<String>> = std::iter::once(&self.headers)
            .chain(&self.rows)
            .map(|r| r.iter().map(|c| clean(c)).collect())
            .collect();
        let mut widths = vec![0; self.headers.len()];
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(width(cell));
            }
        }
        let mut out = String::new();
        for row in &rows {
            let mut line = String::new();
            for (i, (cell, w)) in row.iter().zip(&widths).enumerate() {
                if i > 0 {
                    line.push_str("  ");
                }
                line.push_str(cell);
                line.push_str(&" ".repeat(w - width(cell)));
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }

    pub fn to_csv(&self) -> Result<String> {
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record(&self.headers)?;
        for row in &self.rows {
            w.write_record(row)?;
        }
        Ok(String::from_utf8(w.into_inner()?)?)
    }
}

/// `name: value` lines with the values aligned, for one record.
pub fn render_pairs(pairs: &[(&str, String)]) -> String {
    let w = pairs.iter().map(|(k, _)| width(k)).max().unwrap_or(0);
    pairs
        .iter()
        .map(|(k, v)| format!("{k}:{}  {}\n", " ".repeat(w - width(k)), clean(v)))
        .collect()
}

/// Prints `table` as a table or CSV, or `value` as JSON.
pub fn print(format: Format, table: &Table, value: &impl Serialize) -> Result<()> {
    let text = match format {
        Format::Table => table.render(),
        Format::Csv => table.to_csv()?,
        Format::Json => serde_json::to_string_pretty(value)? + "\n",
    };
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

/// Left-aligned columns separated by two spaces, the first row the header:
/// [`Table`] (terminal display width, control characters in
/// names and reasons shown as spaces so no escape sequence reaches the terminal).
pub fn render_table<const N: usize>(rows: &[[String; N]]) -> String {
    let Some((head, body)) = rows.split_first() else {
        return String::new();
    };
    let headers: Vec<&str> = head.iter().map(String::as_str).collect();
    let mut table = Table::new(&headers);
    for row in body {
        table.push(row.to_vec());
    }
    table.render()
}

/// For commands whose result is lines for a person or JSON: CSV is refused
/// as a usage error naming the command.
pub fn no_csv(format: Format, command: &str) -> Result<()> {
    if format == Format::Csv {
        return Err(usage_error(format!(
            "{command} prints text or JSON, not CSV; use --format table or --format json"
        )));
    }
    Ok(())
}

/// `""` for none, for table cells.
pub fn opt<T: std::fmt::Display>(v: &Option<T>) -> String {
    v.as_ref().map(|v| v.to_string()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligns_columns_by_display_width_with_chinese_text() {
        let mut t = Table::new(&["id", "name", "role"]);
        t.push(vec!["R1".into(), "张三".into(), "tenant".into()]);
        t.push(vec!["R2".into(), "Li".into(), "owner".into()]);
        t.push(vec!["R10".into(), "欧阳娜娜".into(), "family".into()]);
        let text = t.render();
        let lines: Vec<&str> = text.lines().collect();
        // The third column starts at the same display column on every line.
        let starts: Vec<usize> = lines
            .iter()
            .map(|l| {
                let idx = l.rfind("  ").unwrap() + 2;
                width(&l[..idx])
            })
            .collect();
        assert!(starts.iter().all(|s| *s == starts[0]), "{text}");
        assert_eq!(starts[0], 3 + 2 + 8 + 2);
        assert!(lines.iter().all(|l| !l.ends_with(' ')));
    }

    #[test]
    fn csv_quotes_commas_and_keeps_chinese() {
        let mut t = Table::new(&["name", "notes"]);
        t.push(vec!["张三".into(), "a, b".into()]);
        assert_eq!(t.to_csv().unwrap(), "name,notes\n张三,\"a, b\"\n");
    }

    #[test]
    fn tables_align_wide_characters() {
        let t = render_table(&[["张*".to_string(), "x".into()], ["ab".into(), "y".into()]]);
        assert_eq!(t, "张*  x\nab   y\n");
    }

    #[test]
    fn tables_strip_escape_sequences_and_measure_by_display_width() {
        // A name with a terminal escape (clear screen) and a newline.
        let t = render_table(&[
            ["NAME".to_string(), "X".into()],
            ["\u{1b}[2J王\n五".into(), "y".into()],
            ["ｱｲ".into(), "z".into()],
        ]);
        assert!(!t.contains('\u{1b}'), "{t:?}");
        assert_eq!(t.lines().count(), 3, "{t:?}");
        // Half-width katakana take one column each (the old rule said two).
        assert_eq!(t.lines().nth(2).unwrap(), format!("ｱｲ{}z", " ".repeat(9)));
    }

    #[test]
    fn text_is_still_accepted_for_the_table_format() {
        use clap::ValueEnum;
        assert_eq!(Format::from_str("text", true), Ok(Format::Table));
        assert_eq!(Format::from_str("table", true), Ok(Format::Table));
        assert_eq!(Format::from_str("csv", true), Ok(Format::Csv));
    }

    #[test]
    fn control_characters_cannot_break_a_table_line() {
        let mut t = Table::new(&["notes"]);
        t.push(vec!["line1\nline2".into()]);
        assert_eq!(t.render().lines().count(), 2);
        assert_eq!(
            render_pairs(&[("name", "张三".into()), ("id", "R1".into())]),
            "name:  张三\nid:    R1\n"
        );
    }
}

/// A usage error: bad argument values exit with status 2, like clap's own.
pub fn usage_error(message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(super::Exit {
        code: 2,
        message: message.into(),
    })
}

/// The configuration and the opened register, for commands that use the database.
pub fn open_store(cli: &super::Cli) -> Result<(crate::config::Config, crate::store::Store)> {
    let config = cli.load_config()?;
    let store = crate::store::Store::open_config(&config)?;
    Ok((config, store))
}

/// A value that may also be written `none` to clear it (`--valid-until none`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrNone<T>(pub Option<T>);

impl<T> std::str::FromStr for OrNone<T>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.trim().eq_ignore_ascii_case("none") {
            Ok(OrNone(None))
        } else {
            s.parse::<T>()
                .map(|v| OrNone(Some(v)))
                .map_err(|e| e.to_string())
        }
    }
}

/// A calendar date as people write it (see [`crate::enrol::dates::parse_date`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Date(pub chrono::NaiveDate);

impl std::str::FromStr for Date {
    type Err = String;
    fn from_str(s: &str) -> Result<Date, String> {
        crate::enrol::dates::parse_date(s).map(Date)
    }
}
