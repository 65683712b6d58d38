//! `gatehouse import residents FILE.csv`: the property office's spreadsheet
//! into the register, all or nothing.
//!
//! Every row is checked (fields, duplicates within the file, conflicts with
//! the register) inside ONE transaction; any bad row rolls everything back
//! unless `skip_invalid` is set, and every problem is reported as
//! `line N: column: problem`. A person is keyed by their ID number's keyed
//! hash, so importing the same file again changes nothing. Cards and plates
//! are only ever added by an import, never taken away.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use anyhow::{bail, Context, Result};
use chrono::NaiveDate;
use serde::Serialize;
use serde_json::json;

use super::dates::parse_date;
use super::text::decode;
use crate::domain::{
    validate_name, CardFormat, CardNumber, IdDocument, IdKind, Phone, Plate, ResidentId,
    ResidentRole,
};
use crate::store::addresses::HouseholdKind;
use crate::store::addresses::{household_at, Address};
use crate::store::atomic::atomically;
use crate::store::cards;
use crate::store::people::{self, NewPerson, PersonUpdate};
use crate::store::vehicles::{self, VehicleInfo};
use crate::store::Store;

#[derive(Clone, Copy, Debug, Default)]
pub struct ImportOptions {
    /// Check everything and report what would change, then roll back.
    pub dry_run: bool,
    /// Import the good rows and report the bad ones instead of aborting.
    pub skip_invalid: bool,
}

/// One problem with one field of one row.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RowError {
    /// Line in the file (the header is line 1).
    pub line: u64,
    pub column: String,
    pub problem: String,
}

impl fmt::Display for RowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}: {}", self.line, self.column, self.problem)
    }
}

/// What an import did (or, for a dry run or an aborted import, would have done).
#[derive(Clone, Debug, Default, Serialize)]
pub struct ImportReport {
    pub encoding: &'static str,
    pub rows: usize,
    pub added: usize,
    pub updated: usize,
    pub unchanged: usize,
    pub cards_added: usize,
    pub vehicles_added: usize,
    /// Rows left out because they had errors (`skip_invalid`).
    pub skipped: usize,
    pub errors: Vec<RowError>,
    pub dry_run: bool,
    /// True when the changes were written.
    pub committed: bool,
}

impl ImportReport {
    /// Rows with at least one problem.
    fn skipped_rows(&self) -> usize {
        let mut lines: Vec<u64> = self.errors.iter().map(|e| e.line).collect();
        lines.sort_unstable();
        lines.dedup();
        lines.len()
    }

    fn changed_anything(&self) -> bool {
        self.added + self.updated + self.cards_added + self.vehicles_added > 0
    }
}

/// The columns the file may have. `name`, `id_number` and `role` are required.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Column {
    Name,
    IdKind,
    IdNumber,
    Phone,
    Building,
    Unit,
    Room,
    Role,
    ValidUntil,
    Card,
    Plate,
}

impl Column {
    const ALL: [Column; 11] = [
        Column::Name,
        Column::IdKind,
        Column::IdNumber,
        Column::Phone,
        Column::Building,
        Column::Unit,
        Column::Room,
        Column::Role,
        Column::ValidUntil,
        Column::Card,
        Column::Plate,
    ];

    fn name(self) -> &'static str {
        match self {
            Column::Name => "name",
            Column::IdKind => "id_kind",
            Column::IdNumber => "id_number",
            Column::Phone => "phone",
            Column::Building => "building",
            Column::Unit => "unit",
            Column::Room => "room",
            Column::Role => "role",
            Column::ValidUntil => "valid_until",
            Column::Card => "card",
            Column::Plate => "plate",
        }
    }

    /// The English column name, or the Chinese one a property office writes.
    fn from_header(h: &str) -> Option<Column> {
        let h = h.trim().to_ascii_lowercase();
        if let Some(c) = Column::ALL.iter().find(|c| c.name() == h) {
            return Some(*c);
        }
        Some(match h.as_str() {
            "姓名" => Column::Name,
            "证件类型" => Column::IdKind,
            "身份证号" | "身份证号码" | "证件号码" | "证件号" => Column::IdNumber,
            "手机" | "手机号" | "手机号码" | "电话" | "联系电话" => Column::Phone,
            "楼栋" | "楼号" | "栋" => Column::Building,
            "单元" => Column::Unit,
            "房号" | "房间号" | "室" => Column::Room,
            "角色" | "身份" | "人员类型" => Column::Role,
            "有效期至" | "租期至" | "到期日期" | "有效期" => Column::ValidUntil,
            "卡号" | "门禁卡" | "门禁卡号" => Column::Card,
            "车牌" | "车牌号" | "车牌号码" => Column::Plate,
            _ => return None,
        })
    }
}

const REQUIRED: [Column; 3] = [Column::Name, Column::IdNumber, Column::Role];

/// What parsed of a row (a field is `None` when it had a problem, already reported).
struct Fields {
    line: u64,
    name: Option<String>,
    doc: Option<IdDocument>,
    phone: Option<Option<Phone>>,
    address: Option<Option<Address>>,
    role: Option<ResidentRole>,
    valid_until: Option<Option<NaiveDate>>,
    cards: Option<Vec<(CardNumber, CardFormat)>>,
    plates: Option<Vec<Plate>>,
}

impl Fields {
    fn complete(self) -> Option<Row> {
        Some(Row {
            line: self.line,
            name: self.name?,
            doc: self.doc?,
            phone: self.phone?,
            address: self.address?,
            role: self.role?,
            valid_until: self.valid_until?,
            cards: self.cards?,
            plates: self.plates?,
        })
    }
}

/// A row whose fields all parsed.
struct Row {
    line: u64,
    name: String,
    doc: IdDocument,
    phone: Option<Phone>,
    address: Option<Address>,
    role: ResidentRole,
    valid_until: Option<NaiveDate>,
    cards: Vec<(CardNumber, CardFormat)>,
    plates: Vec<Plate>,
}

/// Reads `path` and imports it; see [`import_residents`].
pub fn import_residents_file(
    store: &Store,
    actor: &str,
    path: &Path,
    opts: ImportOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<ImportReport> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let source = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    import_residents(store, actor, &source, &bytes, opts, progress)
        .with_context(|| path.display().to_string())
}

/// Imports a CSV export of residents. `progress(done, total)` is called as rows
/// are processed. Row problems come back in the report (with `committed`
/// false unless `skip_invalid`); an `Err` means the file as a whole could not
/// be read (encoding, header) or the database failed, and nothing was written.
pub fn import_residents(
    store: &Store,
    actor: &str,
    source: &str,
    bytes: &[u8],
    opts: ImportOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<ImportReport> {
    let (text, encoding) = decode(bytes).map_err(|e| anyhow::anyhow!("line 1: file: {e}"))?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(text.as_bytes());
    let header = reader
        .headers()
        .map_err(|e| anyhow::anyhow!("line 1: header: {e}"))?
        .clone();
    let columns = map_header(&header)?;
    let mut records = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| {
            let line = e.position().map(|p| p.line()).unwrap_or(0);
            anyhow::anyhow!("line {line}: file: {e}")
        })?;
        if record.iter().all(|f| f.trim().is_empty()) {
            continue;
        }
        records.push(record);
    }
    let mut report = ImportReport {
        encoding: encoding.as_str(),
        rows: records.len(),
        dry_run: opts.dry_run,
        ..ImportReport::default()
    };
    // Parsing and hashing happen before the write lock is taken, so the
    // transaction (which the gate's event log waits on) stays as short as it can.
    let parsed = parse_all(store, &header, &columns, &records, &mut report.errors);
    drop(records);
    let present = Present {
        phone: columns.contains_key(&Column::Phone),
        address: columns.contains_key(&Column::Building),
        valid_until: columns.contains_key(&Column::ValidUntil),
    };
    // One IMMEDIATE transaction with room for the register's indexes and the
    // import's statements (`atomic::bulk`).
    let commit = crate::store::atomic::bulk(store.conn(), |conn| {
        import_rows(conn, actor, parsed, present, &mut report, progress)?;
        let commit = !opts.dry_run
            && (report.errors.is_empty() || opts.skip_invalid)
            && report.changed_anything();
        if commit {
            Store::audit(
                conn,
                actor,
                "import.residents",
                Some(source),
                Some(&json!({
                    "rows": report.rows,
                    "added": report.added,
                    "updated": report.updated,
                    "cards_added": report.cards_added,
                    "vehicles_added": report.vehicles_added,
                    "skipped": report.skipped_rows(),
                })),
            )?;
        }
        Ok((commit, commit))
    })?;
    report.committed = commit;
    report.errors.sort_by_key(|e| e.line);
    report.skipped = report.skipped_rows();
    if !opts.skip_invalid && !report.errors.is_empty() {
        report.skipped = 0;
    }
    Ok(report)
}

fn map_header(header: &csv::StringRecord) -> Result<HashMap<Column, usize>> {
    let mut columns = HashMap::new();
    let mut problems = Vec::new();
    for (i, h) in header.iter().enumerate() {
        let h = h.trim_start_matches('\u{feff}');
        match Column::from_header(h) {
            Some(c) => {
                if columns.insert(c, i).is_some() {
                    problems.push(format!("column {} appears twice", c.name()));
                }
            }
            None if h.trim().is_empty() => {}
            None => problems.push(format!(
                "unknown column {:?}; expected name,id_number,phone,building,unit,room,role,valid_until,card,plate",
                h.trim()
            )),
        }
    }
    for c in REQUIRED {
        if !columns.contains_key(&c) {
            problems.push(format!("missing column {}", c.name()));
        }
    }
    let address_parts = [Column::Building, Column::Unit, Column::Room]
        .iter()
        .filter(|c| columns.contains_key(c))
        .count();
    if address_parts != 0 && address_parts != 3 {
        problems.push("columns building, unit and room go together".into());
    }
    if !problems.is_empty() {
        bail!(
            "{}",
            problems
                .iter()
                .map(|p| format!("line 1: header: {p}"))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    Ok(columns)
}

/// Reads a field, forgiving what Excel does to numbers kept as text (a leading
/// apostrophe, `="…"`).
fn field<'r>(
    record: &'r csv::StringRecord,
    columns: &HashMap<Column, usize>,
    c: Column,
) -> &'r str {
    let raw = columns
        .get(&c)
        .and_then(|i| record.get(*i))
        .unwrap_or("")
        .trim();
    let raw = raw.strip_prefix('\'').unwrap_or(raw);
    raw.strip_prefix("=\"")
        .and_then(|r| r.strip_suffix('"'))
        .unwrap_or(raw)
        .trim()
}

fn parse_row(
    record: &csv::StringRecord,
    header_len: usize,
    columns: &HashMap<Column, usize>,
    line: u64,
    errors: &mut Vec<RowError>,
) -> Option<Fields> {
    if record.len() != header_len {
        errors.push(RowError {
            line,
            column: "row".into(),
            problem: format!("has {} fields, the header has {header_len}", record.len()),
        });
        return None;
    }
    let get = |c: Column| field(record, columns, c);
    let mut check = Checker { errors, line };
    let name = check.ok(Column::Name, validate_name(get(Column::Name)));
    let kind = match get(Column::IdKind) {
        "" => Some(IdKind::ResidentId),
        k => check.ok(Column::IdKind, k.parse()),
    };
    let number = get(Column::IdNumber);
    let doc = kind.and_then(|kind| {
        let r = if number.is_empty() {
            Err("is empty; every imported resident needs an ID number".to_string())
        } else if looks_like_excel_float(number) {
            Err("Excel turned the number into a float (like 5.10105E+17); format the column as text and export again".to_string())
        } else {
            IdDocument::parse(kind, number)
        };
        check.ok(Column::IdNumber, r)
    });
    let phone = match get(Column::Phone) {
        "" => Some(None),
        p => check.ok(Column::Phone, p.parse::<Phone>().map(Some)),
    };
    let parts = [
        (Column::Building, get(Column::Building)),
        (Column::Unit, get(Column::Unit)),
        (Column::Room, get(Column::Room)),
    ];
    let address = if parts.iter().all(|(_, v)| v.is_empty()) {
        Some(None)
    } else if let Some((c, _)) = parts.iter().find(|(_, v)| v.is_empty()) {
        check.ok(
            *c,
            Err::<Option<Address>, _>(
                "is empty while other parts of the address are given".to_string(),
            ),
        )
    } else {
        let r = Address::new(parts[0].1, parts[1].1, parts[2].1);
        let column = match &r {
            Err(e) if e.starts_with("the building") => Column::Building,
            Err(e) if e.starts_with("the unit") => Column::Unit,
            _ => Column::Room,
        };
        check.ok(column, r.map(Some))
    };
    let role = check.ok(Column::Role, get(Column::Role).parse::<ResidentRole>());
    let valid_until = match get(Column::ValidUntil) {
        "" => Some(None),
        d => check.ok(Column::ValidUntil, parse_date(d).map(Some)),
    };
    let cards = check.ok(
        Column::Card,
        split_list(get(Column::Card))
            .map(|c| {
                let card = c.parse::<CardNumber>()?;
                let format = CardFormat::infer(&card)?;
                Ok((card, format))
            })
            .collect::<Result<Vec<_>, String>>(),
    );
    let plates = check.ok(
        Column::Plate,
        split_list(get(Column::Plate))
            .map(|p| p.parse::<Plate>())
            .collect::<Result<Vec<_>, String>>(),
    );
    Some(Fields {
        line,
        name,
        doc,
        phone,
        address,
        role,
        valid_until,
        cards,
        plates,
    })
}

/// Collects field problems of one row.
struct Checker<'e> {
    errors: &'e mut Vec<RowError>,
    line: u64,
}

impl Checker<'_> {
    fn ok<T>(&mut self, c: Column, r: Result<T, String>) -> Option<T> {
        r.map_err(|problem| {
            self.errors.push(RowError {
                line: self.line,
                column: c.name().to_string(),
                problem,
            })
        })
        .ok()
    }
}

fn split_list(s: &str) -> impl Iterator<Item = &str> {
    s.split([';', '；', '|'])
        .map(str::trim)
        .filter(|x| !x.is_empty())
}

fn looks_like_excel_float(s: &str) -> bool {
    let upper = s.to_ascii_uppercase();
    upper.contains("E+")
        && upper
            .chars()
            .all(|c| c.is_ascii_digit() || ".E+".contains(c))
}

/// First line each ID number, card and plate was seen on, to report duplicates.
#[derive(Default)]
struct Seen {
    ids: HashMap<[u8; 32], u64>,
    cards: HashMap<String, u64>,
    plates: HashMap<String, u64>,
}

/// Which optional columns the file has.
#[derive(Clone, Copy)]
struct Present {
    phone: bool,
    address: bool,
    valid_until: bool,
}

/// A row after the first pass: what parsed, its ID hash, and whether it
/// already had problems.
struct Parsed {
    fields: Fields,
    hash: Option<[u8; 32]>,
    bad: bool,
}

/// First pass, outside the write transaction: fields and keyed hashes.
fn parse_all(
    store: &Store,
    header: &csv::StringRecord,
    columns: &HashMap<Column, usize>,
    records: &[csv::StringRecord],
    errors: &mut Vec<RowError>,
) -> Vec<Parsed> {
    let mut parsed = Vec::with_capacity(records.len());
    for (i, record) in records.iter().enumerate() {
        let line = record.position().map(|p| p.line()).unwrap_or(i as u64 + 2);
        let before = errors.len();
        if let Some(fields) = parse_row(record, header.len(), columns, line, errors) {
            let hash = fields.doc.as_ref().map(|d| d.keyed_hash(store.secret()));
            parsed.push(Parsed {
                fields,
                hash,
                bad: errors.len() > before,
            });
        }
    }
    parsed
}

/// Second pass, inside the transaction: conflicts with the register and
/// within the file, then the writes, each row under its own savepoint.
fn import_rows(
    conn: &rusqlite::Connection,
    actor: &str,
    parsed: Vec<Parsed>,
    present: Present,
    report: &mut ImportReport,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<()> {
    let total = report.rows;
    let mut seen = Seen::default();
    let mut households: HashMap<Address, i64> = HashMap::new();
    for (i, p) in parsed.into_iter().enumerate() {
        if i % 500 == 0 {
            progress(i, total);
        }
        let before = report.errors.len();
        // Duplicates and conflicts are checked on whatever parsed, so one
        // pass over the file reports every problem of every row.
        let existing = match &p.hash {
            Some(h) => people::find_by_id_hash(conn, h)?,
            None => None,
        };
        check_conflicts(
            conn,
            &p.fields,
            p.hash.as_ref(),
            existing,
            &mut seen,
            &mut report.errors,
        )?;
        let (Some(row), Some(hash)) = (p.fields.complete(), p.hash) else {
            continue;
        };
        if p.bad || report.errors.len() > before {
            continue;
        }
        let applied = atomically(conn, |conn| {
            apply_row(conn, actor, &row, hash, existing, present, &households)
        });
        match applied {
            Ok(outcome) => {
                match outcome.person {
                    PersonOutcome::Added => report.added += 1,
                    PersonOutcome::Updated => report.updated += 1,
                    PersonOutcome::Unchanged => report.unchanged += 1,
                }
                report.cards_added += outcome.cards;
                report.vehicles_added += outcome.vehicles;
                // Cached only once the row's savepoint is released, so a
                // rolled-back row never leaves a vanished household in the cache.
                if let Some((address, household)) = outcome.household {
                    households.insert(address, household);
                }
            }
            Err(e) => report.errors.push(RowError {
                line: row.line,
                column: "row".into(),
                problem: format!("{e:#}"),
            }),
        }
    }
    progress(total, total);
    Ok(())
}

fn check_conflicts(
    conn: &rusqlite::Connection,
    row: &Fields,
    hash: Option<&[u8; 32]>,
    existing: Option<ResidentId>,
    seen: &mut Seen,
    errors: &mut Vec<RowError>,
) -> Result<()> {
    let mut err = |c: Column, p: String| {
        errors.push(RowError {
            line: row.line,
            column: c.name().to_string(),
            problem: p,
        })
    };
    if let Some(hash) = hash {
        if let Some(first) = seen.ids.get(hash) {
            err(
                Column::IdNumber,
                format!("duplicate ID number (also on line {first})"),
            );
        } else {
            seen.ids.insert(*hash, row.line);
        }
    }
    for (card, _) in row.cards.iter().flatten() {
        let key = card.key();
        if let Some(first) = seen.cards.get(&key) {
            err(
                Column::Card,
                format!("duplicate card {card} (also on line {first})"),
            );
            continue;
        }
        seen.cards.insert(key, row.line);
        if let Some(owner) = cards::owner(conn, card)? {
            if Some(owner) != existing {
                err(
                    Column::Card,
                    format!("duplicate card: {card} is already assigned to {owner}"),
                );
            }
        }
    }
    for plate in row.plates.iter().flatten() {
        if let Some(first) = seen.plates.get(plate.as_str()) {
            err(
                Column::Plate,
                format!("duplicate plate {plate} (also on line {first})"),
            );
            continue;
        }
        seen.plates.insert(plate.as_str().to_string(), row.line);
        if let Some(owner) = vehicles::owner(conn, plate)? {
            if Some(owner) != existing {
                err(
                    Column::Plate,
                    format!("duplicate plate: {plate} is already registered to {owner}"),
                );
            }
        }
    }
    Ok(())
}

enum PersonOutcome {
    Added,
    Updated,
    Unchanged,
}

struct RowOutcome {
    person: PersonOutcome,
    cards: usize,
    vehicles: usize,
    /// A household this row created, for the import's cache.
    household: Option<(Address, i64)>,
}

fn apply_row(
    conn: &rusqlite::Connection,
    actor: &str,
    row: &Row,
    hash: [u8; 32],
    existing: Option<ResidentId>,
    present: Present,
    households: &HashMap<Address, i64>,
) -> Result<RowOutcome> {
    let mut new_household = None;
    let (id, person) = match existing {
        None => {
            let household = match &row.address {
                Some(a) => Some(match households.get(a) {
                    Some(h) => *h,
                    None => {
                        let h = household_at(
                            conn,
                            actor,
                            a,
                            None,
                            HouseholdKind::default_for(row.role),
                        )?;
                        new_household = Some((a.clone(), h));
                        h
                    }
                }),
                None => None,
            };
            let mut new = NewPerson::new(&row.name, row.role);
            new.id_document = Some(row.doc.clone());
            new.phone = row.phone.clone();
            new.address = row.address.clone();
            new.valid_until = row.valid_until;
            let id = people::insert_row(conn, actor, &new, &row.name, Some(hash), household)?;
            (id, PersonOutcome::Added)
        }
        Some(id) => {
            // The file is the source of truth for the columns it has, and
            // only for those: a file without a phone column keeps the phones.
            let change = PersonUpdate {
                name: Some(row.name.clone()),
                phone: present.phone.then(|| row.phone.clone()),
                role: Some(row.role),
                address: present.address.then(|| row.address.clone()),
                valid_until: present.valid_until.then_some(row.valid_until),
                ..PersonUpdate::default()
            };
            let changed = people::apply_update(conn, actor, id, &change, None)?;
            let outcome = if changed.is_empty() {
                PersonOutcome::Unchanged
            } else {
                PersonOutcome::Updated
            };
            (id, outcome)
        }
    };
    let mut outcome = RowOutcome {
        person,
        cards: 0,
        vehicles: 0,
        household: new_household,
    };
    // check_conflicts showed every card and plate is free or already this
    // person's; only an existing person can already hold one.
    for (card, format) in &row.cards {
        if existing.is_none() || cards::owner(conn, card)? != Some(id) {
            cards::insert_row(conn, actor, id, card, *format)?;
            outcome.cards += 1;
        }
    }
    for plate in &row.plates {
        if existing.is_none() || vehicles::owner(conn, plate)? != Some(id) {
            vehicles::insert_row(conn, actor, id, plate, &VehicleInfo::default())?;
            outcome.vehicles += 1;
        }
    }
    if matches!(outcome.person, PersonOutcome::Unchanged) && outcome.cards + outcome.vehicles > 0 {
        outcome.person = PersonOutcome::Updated;
    }
    Ok(outcome)
}
