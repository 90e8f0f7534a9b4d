//! Elixir's calendar structs (`Date`, `Time`, `NaiveDateTime`, `DateTime`) as the ISO 8601
//! strings Jason writes for them, so that a migrating user's args reach the worker as they did
//! with upstream Snakepit: the text of `Date.to_iso8601/1` and its siblings, byte for byte
//! (extended format; the fraction has the struct's precision; the offset is `Z` only for
//! `Etc/UTC`, otherwise `±HH:MM`, its seconds dropped).
//!
//! Only `Calendar.ISO` is converted: another calendar would need Elixir's conversion rules, so
//! such a struct is refused rather than sent in the wrong calendar.

use rustler::{Atom, Binary, Term};

use crate::atoms;

/// The calendar structs the encoder converts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CalendarKind {
    Date,
    Time,
    NaiveDateTime,
    DateTime,
}

impl CalendarKind {
    /// The kind of a struct whose `__struct__` is `module`, if it is a calendar struct.
    pub fn of(module: Term<'_>) -> Option<CalendarKind> {
        if atoms::date_module() == module {
            Some(CalendarKind::Date)
        } else if atoms::time_module() == module {
            Some(CalendarKind::Time)
        } else if atoms::naive_date_time_module() == module {
            Some(CalendarKind::NaiveDateTime)
        } else if atoms::date_time_module() == module {
            Some(CalendarKind::DateTime)
        } else {
            None
        }
    }

    fn name(self) -> &'static str {
        match self {
            CalendarKind::Date => "Date",
            CalendarKind::Time => "Time",
            CalendarKind::NaiveDateTime => "NaiveDateTime",
            CalendarKind::DateTime => "DateTime",
        }
    }
}

/// Writes `map`, a struct of `kind`, as a quoted JSON string. The error says why it cannot be
/// (another calendar, a field missing or of the wrong type).
pub fn write_iso8601(out: &mut Vec<u8>, kind: CalendarKind, map: Term<'_>) -> Result<(), String> {
    let calendar = map
        .map_get(atoms::calendar())
        .map_err(|_| invalid(kind, "calendar"))?;
    if atoms::calendar_iso() != calendar {
        let name = calendar
            .atom_to_string()
            .map(|name| name.trim_start_matches("Elixir.").to_string())
            .unwrap_or_else(|_| "<not an atom>".to_string());
        return Err(format!(
            "a {} in calendar {name} cannot be sent to a worker: only Calendar.ISO ones are \
             converted to ISO 8601 (convert it with {}.convert!/2 first)",
            kind.name(),
            kind.name()
        ));
    }
    let field = |name: Atom, label: &'static str| -> Result<i64, String> {
        map.map_get(name)
            .and_then(|value| value.decode::<i64>())
            .map_err(|_| invalid(kind, label))
    };

    out.push(b'"');
    if kind != CalendarKind::Time {
        pad(out, field(atoms::year(), "year")?, 4);
        out.push(b'-');
        pad(out, field(atoms::month(), "month")?, 2);
        out.push(b'-');
        pad(out, field(atoms::day(), "day")?, 2);
    }
    if kind == CalendarKind::NaiveDateTime || kind == CalendarKind::DateTime {
        out.push(b'T');
    }
    if kind != CalendarKind::Date {
        pad(out, field(atoms::hour(), "hour")?, 2);
        out.push(b':');
        pad(out, field(atoms::minute(), "minute")?, 2);
        out.push(b':');
        pad(out, field(atoms::second(), "second")?, 2);
        let (value, precision) = map
            .map_get(atoms::microsecond())
            .and_then(|value| value.decode::<(i64, i64)>())
            .ok()
            .filter(|&(value, precision)| {
                (0..=999_999).contains(&value) && (0..=6).contains(&precision)
            })
            .ok_or_else(|| invalid(kind, "microsecond"))?;
        write_fraction(out, value, precision as usize);
    }
    if kind == CalendarKind::DateTime {
        let utc_offset = field(atoms::utc_offset(), "utc_offset")?;
        let std_offset = field(atoms::std_offset(), "std_offset")?;
        let time_zone = map
            .map_get(atoms::time_zone())
            .and_then(Binary::from_term)
            .map_err(|_| invalid(kind, "time_zone"))?;
        write_offset(out, utc_offset, std_offset, time_zone.as_slice());
    }
    out.push(b'"');
    Ok(())
}

fn invalid(kind: CalendarKind, field: &str) -> String {
    format!(
        "a {} whose :{field} field is missing or invalid cannot be sent to a worker",
        kind.name()
    )
}

/// `value` in decimal with at least `width` digits, a `-` before them when negative (Elixir's
/// `Calendar.ISO` pads the same way: `-0005` for the year -5).
fn pad(out: &mut Vec<u8>, value: i64, width: usize) {
    if value < 0 {
        out.push(b'-');
    }
    let mut buffer = itoa::Buffer::new();
    let digits = buffer.format(value.unsigned_abs());
    out.resize(out.len() + width.saturating_sub(digits.len()), b'0');
    out.extend_from_slice(digits.as_bytes());
}

/// The first `precision` of the six microsecond digits, after a dot; nothing for precision 0.
fn write_fraction(out: &mut Vec<u8>, microseconds: i64, precision: usize) {
    if precision > 0 {
        out.push(b'.');
        let mut digits = Vec::with_capacity(6);
        pad(&mut digits, microseconds, 6);
        out.extend_from_slice(&digits[..precision]);
    }
}

/// `Z` for UTC itself; otherwise the total offset as `±HH:MM` (its seconds dropped, as Elixir
/// does; an offset of zero is `+00:00`).
fn write_offset(out: &mut Vec<u8>, utc_offset: i64, std_offset: i64, time_zone: &[u8]) {
    if utc_offset == 0 && std_offset == 0 && time_zone == b"Etc/UTC" {
        out.push(b'Z');
        return;
    }
    let total = utc_offset.saturating_add(std_offset);
    out.push(if total < 0 { b'-' } else { b'+' });
    let seconds = total.unsigned_abs();
    pad(out, (seconds / 3600) as i64, 2);
    out.push(b':');
    pad(out, (seconds % 3600 / 60) as i64, 2);
}
