//! `gatehouse log [filters] [--format table|json|csv]` and `gatehouse log
//! verify`: read the event log (the read is audited) and check its hash chain.

use std::process::ExitCode;

use anyhow::{anyhow, Result};
use chrono::{DateTime, FixedOffset, NaiveDate, TimeZone, Utc};
use clap::{Args, Subcommand, ValueEnum};

use super::output::{render_table, Format};
use super::{Cli, Exit};
use crate::domain::ResidentId;
use crate::store::events::{self, AccessResult, EventFilter, EventKind, EventRecord};
use crate::store::Store;

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct LogArgs {
    #[command(subcommand)]
    pub command: Option<LogCommand>,
    #[command(flatten)]
    pub query: QueryArgs,
}

#[derive(Subcommand, Debug)]
pub enum LogCommand {
    /// Check the hash chain of the whole log (exit 1 if a row was edited, inserted or removed)
    Verify,
}

#[derive(Args, Debug)]
pub struct QueryArgs {
    /// Only events since: a duration back from now (`90s`, `30m`, `2h`, `7d`), a local date or an RFC 3339 instant
    #[arg(long)]
    pub since: Option<String>,
    /// Only events before this (same forms as --since)
    #[arg(long)]
    pub until: Option<String>,
    /// A gate of this gateway (`east`), or at a site's registry a gate of
    /// another gateway (`gate-1/east`) or that gateway's own events (`gate-1`)
    #[arg(long)]
    pub gate: Option<GateRef>,
    /// Resident id (`R42`)
    #[arg(long)]
    pub resident: Option<ResidentId>,
    #[arg(long, value_enum)]
    pub result: Option<ResultArg>,
    #[arg(long, value_enum)]
    pub kind: Option<KindArg>,
    /// At most this many events (the oldest matching first)
    #[arg(long)]
    pub limit: Option<u32>,
    /// Output format (`json`: one event object per line)
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

/// `--gate`: a gate id, or `<gateway>/<gate>` as the registry of a site
/// names the gates of its other gateways (`store::site_gates::site_gate_name`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GateRef(String);

impl std::str::FromStr for GateRef {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.split('/').collect();
        if parts.len() > 2 {
            return Err(format!(
                "{s:?}: expected a gate (east) or a gateway and its gate (gate-1/east)"
            ));
        }
        for part in &parts {
            crate::domain::validate_slug(part)?;
        }
        Ok(GateRef(s.to_string()))
    }
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ResultArg {
    Granted,
    Denied,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum KindArg {
    Access,
    Alarm,
    Device,
}

pub fn run(cli: &Cli, args: &LogArgs) -> Result<ExitCode> {
    let config = cli.load_config()?;
    let store = Store::open_config(&config)?;
    if let Some(LogCommand::Verify) = args.command {
        let (checked, breaks) = events::verify_chain(store.conn())?;
        if breaks.is_empty() {
            println!("{checked} events checked: the hash chain is intact");
            return Ok(ExitCode::SUCCESS);
        }
        for b in &breaks {
            println!("event {}: {}", b.seq, b.problem);
        }
        return Err(Exit {
            code: 1,
            message: format!(
                "{} of {checked} events fail the hash chain check: the log in {} was altered",
                breaks.len(),
                store.path().display()
            ),
        }
        .into());
    }
    let offset = config.site.utc_offset();
    let q = &args.query;
    let now = Utc::now();
    let filter = EventFilter {
        since: q
            .since
            .as_deref()
            .map(|s| parse_when(s, now, offset))
            .transpose()?,
        until: q
            .until
            .as_deref()
            .map(|s| parse_when(s, now, offset))
            .transpose()?,
        gate: q.gate.as_ref().map(|g| g.0.clone()),
        subject_id: q.resident.map(|r| r.0),
        result: q.result.map(|r| match r {
            ResultArg::Granted => AccessResult::Granted,
            ResultArg::Denied => AccessResult::Denied,
        }),
        kind: q.kind.map(|k| match k {
            KindArg::Access => EventKind::Access,
            KindArg::Alarm => EventKind::Alarm,
            KindArg::Device => EventKind::Device,
        }),
        credential_kind: None,
        after_seq: None,
        limit: q.limit,
        newest_first: false,
    };
    // Events name residents (masked): who looked is recorded.
    Store::audit(
        store.conn(),
        &crate::store::os_user(),
        "log.query",
        None,
        Some(&serde_json::to_value(&filter)?),
    )?;
    let rows = events::query(store.conn(), &filter)?;
    match q.format {
        Format::Json => {
            for e in &rows {
                println!("{}", serde_json::to_string(e)?);
            }
        }
        Format::Csv => {
            let mut w = csv::Writer::from_writer(std::io::stdout().lock());
            w.write_record(events::CSV_COLUMNS)?;
            for e in &rows {
                w.write_record(e.csv_row())?;
            }
            w.flush()?;
        }
        Format::Table => {
            let mut table = vec![[
                "SEQ".to_string(),
                "TIME".into(),
                "GATE".into(),
                "KIND".into(),
                "CREDENTIAL".into(),
                "SUBJECT".into(),
                "RESULT".into(),
                "REASON".into(),
            ]];
            for e in &rows {
                table.push(table_row(e, offset));
            }
            print!("{}", render_table(&table));
            eprintln!("{} event(s)", rows.len());
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn table_row(e: &EventRecord, offset: FixedOffset) -> [String; 8] {
    let time = DateTime::parse_from_rfc3339(&e.at)
        .map(|t| {
            t.with_timezone(&offset)
                .format("%Y-%m-%d %H:%M:%S")
                .to_string()
        })
        .unwrap_or_else(|_| e.at.clone());
    let time = if e.clock_synced {
        time
    } else {
        format!("{time}?")
    };
    let credential = match (&e.credential_kind, &e.credential_masked) {
        (Some(k), Some(m)) => format!("{k} {m}"),
        (Some(k), None) => k.clone(),
        _ => "-".into(),
    };
    let subject = match (e.subject_id, &e.subject_name) {
        (Some(id), Some(n)) => format!("R{id} {n}"),
        (Some(id), None) => format!("R{id}"),
        (None, Some(n)) => n.clone(),
        (None, None) => "-".into(),
    };
    [
        e.seq.to_string(),
        time,
        e.gate.clone().unwrap_or_else(|| "-".into()),
        e.kind.as_str().into(),
        credential,
        subject,
        e.result
            .map(|r| r.as_str().to_string())
            .unwrap_or_else(|| "-".into()),
        e.reason.clone().unwrap_or_else(|| "-".into()),
    ]
}

/// `2h` back from `now`, a local date (midnight), or an RFC 3339 instant.
pub fn parse_when(s: &str, now: DateTime<Utc>, offset: FixedOffset) -> Result<DateTime<Utc>> {
    let s = s.trim();
    // A duration back from now, in the grammar of crate::units (2h, 7d, 1h30m).
    if s.starts_with(|c: char| c.is_ascii_digit()) {
        if let Ok(d) = crate::units::parse_duration(s) {
            let back = chrono::Duration::from_std(d).map_err(|_| anyhow!("{s:?} is too long"))?;
            return now
                .checked_sub_signed(back)
                .ok_or_else(|| anyhow!("{s:?} reaches before any date"));
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        let midnight = d
            .and_hms_opt(0, 0, 0)
            .ok_or_else(|| anyhow!("bad date {s:?}"))?;
        return offset
            .from_local_datetime(&midnight)
            .single()
            .map(|t| t.with_timezone(&Utc))
            .ok_or_else(|| anyhow!("bad date {s:?}"));
    }
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| anyhow!("{s:?}: expected a duration like 2h or 7d, a date YYYY-MM-DD or an RFC 3339 instant"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gate_filter_takes_a_gate_or_a_gateway_and_its_gate() {
        assert_eq!("east".parse::<GateRef>().unwrap().0, "east");
        assert_eq!("gate-1/east".parse::<GateRef>().unwrap().0, "gate-1/east");
        assert!("gate-1/east/x".parse::<GateRef>().is_err());
        assert!("gate-1/".parse::<GateRef>().is_err());
        assert!("east'; --".parse::<GateRef>().is_err());
    }

    #[test]
    fn since_accepts_durations_dates_and_instants() {
        let now = Utc.with_ymd_and_hms(2025, 3, 12, 10, 0, 0).unwrap();
        let cst = FixedOffset::east_opt(8 * 3600).unwrap();
        assert_eq!(
            parse_when("2h", now, cst).unwrap(),
            Utc.with_ymd_and_hms(2025, 3, 12, 8, 0, 0).unwrap()
        );
        assert_eq!(
            parse_when("7d", now, cst).unwrap(),
            Utc.with_ymd_and_hms(2025, 3, 5, 10, 0, 0).unwrap()
        );
        assert_eq!(
            parse_when("2025-03-12", now, cst).unwrap(),
            Utc.with_ymd_and_hms(2025, 3, 11, 16, 0, 0).unwrap()
        );
        // The same duration grammar as every other flag (crate::units).
        assert_eq!(
            parse_when("1h30m", now, cst).unwrap(),
            Utc.with_ymd_and_hms(2025, 3, 12, 8, 30, 0).unwrap()
        );
        assert!(parse_when("yesterday", now, cst).is_err());
    }
}
