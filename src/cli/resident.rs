//! `gatehouse resident add|list|show|update|suspend|resume|move-out|remove`.

use std::io::BufRead;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Subcommand};

use super::output::{
    self, open_store, opt, render_pairs, usage_error, Date, FormatArg, OrNone, Table,
};
use super::Cli;
use crate::domain::{
    CardNumber, IdDocument, IdKind, PersonStatus, Phone, Plate, ResidentId, ResidentRole,
};
use crate::store::addresses::{Address, AddressPrefix, HouseholdKind};
use crate::store::people::{self, NewPerson, PersonUpdate, Search};
use crate::store::{os_user, Store};

#[derive(Subcommand, Debug)]
pub enum ResidentCommand {
    /// Register a person; prints the new resident id
    Add(AddArgs),
    /// List residents, optionally filtered (by name, address, card, plate …)
    List(ListArgs),
    /// Everything the register holds about one resident (the read is audited)
    Show {
        resident: ResidentId,
        /// Print the phone number in clear (audited)
        #[arg(long)]
        reveal_phone: bool,
        #[command(flatten)]
        out: FormatArg,
    },
    /// Check an ID number a person shows against the one registered (the
    /// register keeps only a keyed hash); prints match or no match (audited)
    CheckId {
        resident: ResidentId,
        /// The number (`-` reads it from standard input, keeping it out of shell history)
        #[arg(long, value_name = "NUMBER")]
        id_number: String,
        /// Kind of ID document
        #[arg(long, default_value = "resident_id")]
        id_kind: IdKind,
    },
    /// Change a resident's details; `none` clears an optional field
    Update(UpdateArgs),
    /// Refuse a resident at every gate until resumed
    Suspend { resident: ResidentId },
    /// Let a suspended or moved-out resident in again
    Resume { resident: ResidentId },
    /// Mark a resident as moved out (kept in the register, refused at the gates)
    MoveOut { resident: ResidentId },
    /// Delete a resident with their cards, vehicles, passes and biometrics
    /// (past events keep only the id and masked name)
    Remove {
        resident: ResidentId,
        /// Confirm the deletion
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Args, Debug)]
pub struct AddArgs {
    #[arg(long)]
    name: String,
    /// ID document number (`-` reads it from standard input, keeping it out of shell history)
    #[arg(long, value_name = "NUMBER")]
    id_number: Option<String>,
    /// Kind of ID document
    #[arg(long, default_value = "resident_id")]
    id_kind: IdKind,
    /// Mainland mobile number
    #[arg(long)]
    phone: Option<Phone>,
    /// Building-unit-room, e.g. 3-2-501
    #[arg(long)]
    address: Option<Address>,
    /// Kind of household at the address [default: from the role]
    #[arg(long)]
    household_kind: Option<HouseholdKind>,
    /// owner, family, tenant, staff or guard
    #[arg(long)]
    role: ResidentRole,
    #[arg(long, value_name = "DATE")]
    valid_from: Option<Date>,
    /// Last day of access (a tenant's lease end)
    #[arg(long, value_name = "DATE")]
    valid_until: Option<Date>,
    /// Floating population (流动人口)
    #[arg(long)]
    floating: bool,
    /// Residence permit expiry
    #[arg(long, value_name = "DATE")]
    permit_until: Option<Date>,
    #[arg(long)]
    notes: Option<String>,
    #[command(flatten)]
    out: FormatArg,
}

#[derive(Args, Debug)]
pub struct ListArgs {
    /// Part of the name
    #[arg(long)]
    name: Option<String>,
    /// A building (3), unit (3-2) or room (3-2-501)
    #[arg(long)]
    address: Option<AddressPrefix>,
    #[arg(long)]
    card: Option<CardNumber>,
    #[arg(long)]
    plate: Option<Plate>,
    /// A resident ID number (`-` reads it from standard input)
    #[arg(long, value_name = "NUMBER")]
    id_number: Option<String>,
    #[arg(long, default_value = "resident_id")]
    id_kind: IdKind,
    #[arg(long)]
    phone: Option<Phone>,
    #[arg(long)]
    role: Option<ResidentRole>,
    /// active, suspended or moved_out
    #[arg(long)]
    status: Option<PersonStatus>,
    #[arg(long)]
    limit: Option<u32>,
    #[command(flatten)]
    out: FormatArg,
}

#[derive(Args, Debug)]
pub struct UpdateArgs {
    resident: ResidentId,
    #[arg(long)]
    name: Option<String>,
    /// New ID document number (`-` reads standard input; `none` removes it)
    #[arg(long, value_name = "NUMBER")]
    id_number: Option<String>,
    #[arg(long, default_value = "resident_id")]
    id_kind: IdKind,
    #[arg(long, value_name = "PHONE|none")]
    phone: Option<OrNone<Phone>>,
    #[arg(long, value_name = "ADDRESS|none")]
    address: Option<OrNone<Address>>,
    #[arg(long)]
    household_kind: Option<HouseholdKind>,
    #[arg(long)]
    role: Option<ResidentRole>,
    #[arg(long, value_name = "DATE|none")]
    valid_from: Option<OrNone<Date>>,
    #[arg(long, value_name = "DATE|none")]
    valid_until: Option<OrNone<Date>>,
    #[arg(long, value_name = "true|false")]
    floating: Option<bool>,
    #[arg(long, value_name = "DATE|none")]
    permit_until: Option<OrNone<Date>>,
    #[arg(long, value_name = "TEXT|none")]
    notes: Option<OrNone<String>>,
}

/// Reads `--id-number`, from standard input when it is `-`, and validates it.
fn id_document(raw: &str, kind: IdKind) -> Result<IdDocument> {
    let number = if raw == "-" {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        line
    } else {
        raw.to_string()
    };
    IdDocument::parse(kind, &number).map_err(|e| usage_error(format!("--id-number: {e}")))
}

fn date(d: Option<OrNone<Date>>) -> Option<Option<chrono::NaiveDate>> {
    d.map(|OrNone(d)| d.map(|Date(d)| d))
}

pub fn run(cli: &Cli, cmd: &ResidentCommand) -> Result<ExitCode> {
    let (_config, store) = open_store(cli)?;
    let actor = os_user();
    match cmd {
        ResidentCommand::Add(a) => add(&store, &actor, a),
        ResidentCommand::List(a) => list(&store, &actor, a),
        ResidentCommand::Show {
            resident,
            reveal_phone,
            out,
        } => show(&store, &actor, *resident, *reveal_phone, *out),
        ResidentCommand::CheckId {
            resident,
            id_number,
            id_kind,
        } => check_id(&store, &actor, *resident, id_number, *id_kind),
        ResidentCommand::Update(a) => update(&store, &actor, a),
        ResidentCommand::Suspend { resident } => {
            status(&store, &actor, *resident, PersonStatus::Suspended)
        }
        ResidentCommand::Resume { resident } => {
            status(&store, &actor, *resident, PersonStatus::Active)
        }
        ResidentCommand::MoveOut { resident } => {
            status(&store, &actor, *resident, PersonStatus::MovedOut)
        }
        ResidentCommand::Remove { resident, yes } => {
            if !yes {
                return Err(usage_error(format!(
                    "this permanently deletes {resident} with their cards, vehicles, visitor passes and biometrics; add --yes to confirm"
                )));
            }
            let removed = people::remove(&store, &actor, *resident)?;
            println!(
                "removed {} ({}): {} card(s), {} vehicle(s), {} visitor pass(es)",
                removed.id,
                removed.masked_name,
                removed.cards,
                removed.vehicles,
                removed.visitor_passes
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn add(store: &Store, actor: &str, a: &AddArgs) -> Result<ExitCode> {
    let mut new = NewPerson::new(&a.name, a.role);
    new.id_document = a
        .id_number
        .as_deref()
        .map(|n| id_document(n, a.id_kind))
        .transpose()?;
    new.phone = a.phone.clone();
    new.address = a.address.clone();
    new.household_kind = a.household_kind;
    new.valid_from = a.valid_from.map(|d| d.0);
    new.valid_until = a.valid_until.map(|d| d.0);
    new.floating = a.floating;
    new.residence_permit_until = a.permit_until.map(|d| d.0);
    new.notes = a.notes.clone();
    let id = people::add(store, actor, &new)?;
    match a.out.format {
        output::Format::Json => println!("{}", serde_json::json!({ "id": id.0 })),
        _ => println!("{id}"),
    }
    Ok(ExitCode::SUCCESS)
}

fn list(store: &Store, actor: &str, a: &ListArgs) -> Result<ExitCode> {
    let filter = Search {
        name: a.name.clone(),
        address: a.address.clone(),
        card: a.card.clone(),
        plate: a.plate.clone(),
        id_document: a
            .id_number
            .as_deref()
            .map(|n| id_document(n, a.id_kind))
            .transpose()?,
        phone: a.phone.clone(),
        role: a.role,
        status: a.status,
        limit: a.limit,
    };
    let rows = people::search(store, actor, &filter)?;
    let mut table = Table::new(&[
        "id",
        "name",
        "role",
        "status",
        "address",
        "phone",
        "valid_until",
        "cards",
        "plates",
    ]);
    for p in &rows {
        table.push(vec![
            p.id.to_string(),
            p.name.clone(),
            p.role.to_string(),
            p.status.to_string(),
            opt(&p.address),
            p.phone.as_ref().map(Phone::masked).unwrap_or_default(),
            opt(&p.valid_until),
            p.cards.join(" "),
            p.plates.join(" "),
        ]);
    }
    output::print(a.out.format, &table, &rows)?;
    Ok(ExitCode::SUCCESS)
}

fn show(
    store: &Store,
    actor: &str,
    id: ResidentId,
    reveal: bool,
    out: FormatArg,
) -> Result<ExitCode> {
    let d = people::show(store, actor, id)?;
    let phone = if reveal {
        people::reveal_phone(store, actor, id)?.map(|p| p.as_str().to_string())
    } else {
        d.person.phone.as_ref().map(Phone::masked)
    };
    if out.format == output::Format::Json {
        let mut value = serde_json::to_value(&d)?;
        value["phone"] = serde_json::json!(phone);
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(ExitCode::SUCCESS);
    }
    let p = &d.person;
    let now = chrono::Utc::now();
    let pairs = vec![
        ("id", p.id.to_string()),
        ("name", p.name.clone()),
        (
            "id_document",
            match (&p.id_kind, &p.id_masked) {
                (Some(k), Some(m)) => format!("{m} ({k})"),
                _ => String::new(),
            },
        ),
        ("phone", phone.unwrap_or_default()),
        ("role", p.role.to_string()),
        ("status", p.status.to_string()),
        ("address", opt(&p.address)),
        ("household", opt(&p.household_kind)),
        ("valid_from", opt(&p.valid_from)),
        ("valid_until", opt(&p.valid_until)),
        (
            "floating",
            if p.floating {
                "yes".into()
            } else {
                "no".into()
            },
        ),
        ("permit_until", opt(&p.residence_permit_until)),
        ("notes", opt(&p.notes)),
        (
            "cards",
            d.cards
                .iter()
                .map(|c| format!("{} ({})", c.card, c.format))
                .collect::<Vec<_>>()
                .join(", "),
        ),
        (
            "vehicles",
            d.vehicles
                .iter()
                .map(|v| v.plate.clone())
                .collect::<Vec<_>>()
                .join(", "),
        ),
        (
            "visitor_passes",
            format!(
                "{} usable now, {} in all",
                d.visitor_passes
                    .iter()
                    .filter(|v| v.is_usable_at(now))
                    .count(),
                d.visitor_passes.len()
            ),
        ),
        ("groups", d.groups.join(", ")),
        ("created", format!("{} by {}", p.created_at, p.created_by)),
        ("updated", format!("{} by {}", p.updated_at, p.updated_by)),
    ];
    if out.format == output::Format::Csv {
        let mut t = Table::new(&["field", "value"]);
        for (k, v) in pairs {
            t.push(vec![k.to_string(), v]);
        }
        print!("{}", t.to_csv()?);
    } else {
        print!("{}", render_pairs(&pairs));
    }
    Ok(ExitCode::SUCCESS)
}

/// Exit 0 on a match, 1 on no match (so a script can branch on it).
fn check_id(
    store: &Store,
    actor: &str,
    id: ResidentId,
    raw: &str,
    kind: IdKind,
) -> Result<ExitCode> {
    let doc = id_document(raw, kind)?;
    match people::check_id_document(store, actor, id, &doc)? {
        Some(true) => {
            println!("match: this is the {kind} number registered for {id}");
            Ok(ExitCode::SUCCESS)
        }
        Some(false) => {
            println!("no match: {id} has a different {kind} number registered");
            Ok(ExitCode::from(1))
        }
        None => Err(anyhow::Error::new(super::Exit {
            code: 1,
            message: format!("{id} has no ID document registered"),
        })),
    }
}

fn update(store: &Store, actor: &str, a: &UpdateArgs) -> Result<ExitCode> {
    let id_document = match a.id_number.as_deref() {
        None => None,
        Some(n) if n.eq_ignore_ascii_case("none") => Some(None),
        Some(n) => Some(Some(id_document(n, a.id_kind)?)),
    };
    let change = PersonUpdate {
        name: a.name.clone(),
        id_document,
        phone: a.phone.clone().map(|p| p.0),
        role: a.role,
        address: a.address.clone().map(|p| p.0),
        household_kind: a.household_kind,
        valid_from: date(a.valid_from.clone()),
        valid_until: date(a.valid_until.clone()),
        floating: a.floating,
        residence_permit_until: date(a.permit_until.clone()),
        notes: a.notes.clone().map(|p| p.0),
    };
    let changed = people::update(store, actor, a.resident, &change)?;
    if changed.is_empty() {
        println!("{}: nothing changed", a.resident);
    } else {
        println!("{}: updated {}", a.resident, changed.join(", "));
    }
    Ok(ExitCode::SUCCESS)
}

fn status(store: &Store, actor: &str, id: ResidentId, to: PersonStatus) -> Result<ExitCode> {
    let before = people::set_status(store, actor, id, to)?;
    if before == to {
        println!("{id} is already {to}");
    } else {
        println!("{id}: {before} -> {to}");
    }
    Ok(ExitCode::SUCCESS)
}
