//! Terms → JSON, written straight into the request frame.

use std::collections::hash_map::{Entry, HashMap};
use std::fmt::Write as _;

use rustler::types::tuple::get_tuple;
use rustler::{BigInt, Binary, MapIterator, Term, TermType};
use snakepit_protocol::json::write_json_str;

use super::calendar::{self, CalendarKind};
use super::MAX_DEPTH;
use crate::atoms;

/// OTP 25's NIF interface (2.16) reads atoms as Latin-1 only.
const BEYOND_LATIN1: &str =
    "an atom with characters beyond Latin-1 cannot be read by a NIF on OTP 25 (use a string)";

/// Why a term could not be encoded, with the path to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodeError {
    pub path: String,
    pub reason: String,
}

impl std::fmt::Display for EncodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at {}", self.reason, self.path)
    }
}

/// One step from the root to the term being encoded.
enum Step<'a> {
    Key(Term<'a>),
    Index(usize),
}

/// Encoder state: the output buffer and the current path.
pub struct JsonWriter<'o, 'a> {
    out: &'o mut Vec<u8>,
    path: Vec<Step<'a>>,
    root: &'static str,
}

impl<'o, 'a> JsonWriter<'o, 'a> {
    /// `root` names the top-level value in error paths (e.g. `"args"`).
    pub fn new(out: &'o mut Vec<u8>, root: &'static str) -> Self {
        JsonWriter {
            out,
            path: Vec::new(),
            root,
        }
    }

    pub fn write(&mut self, term: Term<'a>) -> Result<(), EncodeError> {
        let kind = term.get_type();
        // Checked before recursing into a container: `path` holds the containers around it.
        if matches!(kind, TermType::Map | TermType::List | TermType::Tuple)
            && self.path.len() >= MAX_DEPTH
        {
            return Err(self.error(&format!(
                "terms nested deeper than {MAX_DEPTH} levels cannot be sent"
            )));
        }
        match kind {
            TermType::Atom => self.write_atom(term),
            TermType::Binary => {
                let text = utf8(term).ok_or_else(|| self.error("binary is not valid UTF-8"))?;
                write_json_str(self.out, text);
                Ok(())
            }
            TermType::Integer => self.write_integer(term),
            TermType::Float => {
                let value: f64 = term.decode().map_err(|_| self.error("unreadable float"))?;
                serde_json::to_writer(&mut *self.out, &value)
                    .map_err(|_| self.error("float cannot be represented in JSON"))
            }
            TermType::Map => self.write_map(term),
            TermType::List => self.write_list(term),
            TermType::Tuple => {
                let items = get_tuple(term).map_err(|_| self.error("unreadable tuple"))?;
                self.write_items(items.into_iter())
            }
            TermType::Pid => Err(self.error("a pid cannot be sent to a worker")),
            TermType::Ref => Err(self.error("a reference cannot be sent to a worker")),
            TermType::Fun => Err(self.error("a function cannot be sent to a worker")),
            TermType::Port => Err(self.error("a port cannot be sent to a worker")),
            TermType::Unknown => Err(self.error("this term cannot be sent to a worker")),
        }
    }

    fn write_atom(&mut self, term: Term<'a>) -> Result<(), EncodeError> {
        if term == atoms::true_().to_term(term.get_env()) {
            self.out.extend_from_slice(b"true");
        } else if term == atoms::false_().to_term(term.get_env()) {
            self.out.extend_from_slice(b"false");
        } else if term == atoms::nil().to_term(term.get_env()) {
            self.out.extend_from_slice(b"null");
        } else {
            let name = term
                .atom_to_string()
                .map_err(|_| self.error(BEYOND_LATIN1))?;
            write_json_str(self.out, &name);
        }
        Ok(())
    }

    fn write_integer(&mut self, term: Term<'a>) -> Result<(), EncodeError> {
        // itoa formats on the stack: no allocation per number.
        let mut digits = itoa::Buffer::new();
        if let Ok(value) = term.decode::<i64>() {
            self.out.extend_from_slice(digits.format(value).as_bytes());
        } else if let Ok(value) = term.decode::<u64>() {
            self.out.extend_from_slice(digits.format(value).as_bytes());
        } else {
            let value = big_integer_text(term).ok_or_else(|| self.error("unreadable integer"))?;
            self.out.extend_from_slice(value.as_bytes());
        }
        Ok(())
    }

    fn write_map(&mut self, term: Term<'a>) -> Result<(), EncodeError> {
        let entries = MapIterator::new(term).ok_or_else(|| self.error("unreadable map"))?;
        let start = self.out.len();
        self.out.push(b'{');
        let mut first_kind = None;
        let mut mixed_kinds = false;
        for (index, (key, value)) in entries.enumerate() {
            // A struct is a map with an atom under `__struct__` (as Elixir and Jason see it):
            // spotted as its keys go by, one word comparison per key, so that a plain map pays
            // no lookup. What was written of it is dropped.
            if atoms::struct_() == key && value.get_type() == TermType::Atom {
                self.out.truncate(start);
                return self.write_struct(term, value);
            }
            if index > 0 {
                self.out.push(b',');
            }
            let kind = key.get_type();
            match first_kind {
                None => first_kind = Some(kind),
                Some(first) => mixed_kinds |= kind != first,
            }
            self.write_key(key, kind)?;
            self.out.push(b':');
            self.path.push(Step::Key(key));
            self.write(value)?;
            self.path.pop();
        }
        self.out.push(b'}');
        // Keys of one kind never collide: only a map mixing them pays for the check.
        if mixed_kinds {
            self.check_key_collisions(term)?;
        }
        Ok(())
    }

    /// Calendar structs become the ISO 8601 strings Jason writes for them; any other struct is
    /// refused (JSON would lose what it is, and upstream's Jason refuses a struct that does not
    /// implement its encoder).
    fn write_struct(&mut self, map: Term<'a>, module: Term<'a>) -> Result<(), EncodeError> {
        match CalendarKind::of(module) {
            Some(kind) => {
                calendar::write_iso8601(self.out, kind, map).map_err(|reason| self.error(&reason))
            }
            None => {
                let name = module
                    .atom_to_string()
                    .unwrap_or_else(|_| "<module beyond Latin-1>".to_string());
                let name = name.strip_prefix("Elixir.").unwrap_or(&name);
                Err(self.error(&format!(
                    "a {name} struct cannot be sent to a worker: only Date, Time, NaiveDateTime \
                     and DateTime structs are converted (to ISO 8601 strings); convert it to a \
                     map (e.g. with Map.from_struct/1) or a string first"
                )))
            }
        }
    }

    /// JSON keys are strings: atoms and UTF-8 binaries as they are, integers in decimal.
    fn write_key(&mut self, key: Term<'a>, kind: TermType) -> Result<(), EncodeError> {
        match kind {
            TermType::Atom => {
                let name = key
                    .atom_to_string()
                    .map_err(|_| self.key_error(key, BEYOND_LATIN1))?;
                write_json_str(self.out, &name);
            }
            TermType::Binary => match utf8(key) {
                Some(text) => write_json_str(self.out, text),
                None => return Err(self.key_error(key, "map key is not valid UTF-8")),
            },
            TermType::Integer => {
                self.out.push(b'"');
                self.write_integer(key)?;
                self.out.push(b'"');
            }
            _ => {
                return Err(self.key_error(
                    key,
                    "map keys must be atoms, strings or integers to become JSON object keys",
                ))
            }
        }
        Ok(())
    }

    /// Refuses keys of different kinds that become the same JSON key (`1` and `"1"`, `:a` and
    /// `"a"`): the worker would see only one of them. `map` has been written, so its keys are
    /// known to be readable.
    fn check_key_collisions(&self, map: Term<'a>) -> Result<(), EncodeError> {
        let mut seen: HashMap<String, Term<'a>> = HashMap::new();
        for (key, _) in MapIterator::new(map).ok_or_else(|| self.error("unreadable map"))? {
            let text = key_text(key).ok_or_else(|| self.error("unreadable map key"))?;
            match seen.entry(text) {
                Entry::Vacant(entry) => {
                    entry.insert(key);
                }
                Entry::Occupied(entry) => {
                    return Err(self.error(&format!(
                        "keys {} and {} both become the JSON key {:?}",
                        show_key(*entry.get()),
                        show_key(key),
                        entry.key()
                    )));
                }
            }
        }
        Ok(())
    }

    fn write_list(&mut self, mut term: Term<'a>) -> Result<(), EncodeError> {
        self.out.push(b'[');
        let mut index = 0;
        while !term.is_empty_list() {
            let (head, tail) = term
                .list_get_cell()
                .map_err(|_| self.error("improper list cannot be sent to a worker"))?;
            if index > 0 {
                self.out.push(b',');
            }
            self.path.push(Step::Index(index));
            self.write(head)?;
            self.path.pop();
            index += 1;
            term = tail;
        }
        self.out.push(b']');
        Ok(())
    }

    fn write_items(&mut self, items: impl Iterator<Item = Term<'a>>) -> Result<(), EncodeError> {
        self.out.push(b'[');
        for (index, item) in items.enumerate() {
            if index > 0 {
                self.out.push(b',');
            }
            self.path.push(Step::Index(index));
            self.write(item)?;
            self.path.pop();
        }
        self.out.push(b']');
        Ok(())
    }

    fn key_error(&mut self, key: Term<'a>, reason: &str) -> EncodeError {
        self.path.push(Step::Key(key));
        let error = self.error(reason);
        self.path.pop();
        error
    }

    /// Renders the current path Elixir-style: `args.name`, `args["name"]`, `args.list[3]`.
    fn error(&self, reason: &str) -> EncodeError {
        let mut path = String::from(self.root);
        for step in &self.path {
            match step {
                Step::Index(index) => write!(path, "[{index}]").unwrap(),
                Step::Key(key) => match key.get_type() {
                    TermType::Atom => match key.atom_to_string() {
                        Ok(name) => write!(path, ".{name}").unwrap(),
                        Err(_) => path.push_str(".<atom beyond Latin-1>"),
                    },
                    TermType::Binary => match utf8(*key) {
                        Some(text) => write!(path, "[{text:?}]").unwrap(),
                        None => path.push_str("[<non-UTF-8 binary>]"),
                    },
                    TermType::Integer => match integer_text(*key) {
                        Some(n) => write!(path, "[{n}]").unwrap(),
                        None => path.push_str("[<integer>]"),
                    },
                    _ => path.push_str("[<key>]"),
                },
            }
        }
        EncodeError {
            path,
            reason: reason.to_string(),
        }
    }
}

/// The JSON key a map key becomes (for keys `write_key` accepts).
fn key_text(key: Term<'_>) -> Option<String> {
    match key.get_type() {
        TermType::Atom => key.atom_to_string().ok(),
        TermType::Binary => utf8(key).map(str::to_string),
        TermType::Integer => integer_text(key),
        _ => None,
    }
}

/// A map key as Elixir code writes it: `:a`, `"a"`, `1`.
fn show_key(key: Term<'_>) -> String {
    match key.get_type() {
        TermType::Atom => match key.atom_to_string() {
            Ok(name) if is_plain_atom(&name) => format!(":{name}"),
            Ok(name) => format!(":{name:?}"),
            Err(_) => ":<atom beyond Latin-1>".to_string(),
        },
        TermType::Binary => utf8(key).map_or_else(|| "<binary>".to_string(), |t| format!("{t:?}")),
        TermType::Integer => integer_text(key).unwrap_or_else(|| "<integer>".to_string()),
        _ => "<key>".to_string(),
    }
}

/// Whether `:name` needs no quotes in Elixir (roughly: an identifier).
fn is_plain_atom(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// An integer in decimal, of any size.
fn integer_text(term: Term<'_>) -> Option<String> {
    match (term.decode::<i64>(), term.decode::<u64>()) {
        (Ok(n), _) => Some(n.to_string()),
        (_, Ok(n)) => Some(n.to_string()),
        _ => big_integer_text(term),
    }
}

/// An integer beyond 64 bits in decimal (through the external term format: allocates).
fn big_integer_text(term: Term<'_>) -> Option<String> {
    term.decode::<BigInt>().ok().map(|n| n.to_string())
}

fn utf8(term: Term<'_>) -> Option<&str> {
    let binary = Binary::from_term(term).ok()?;
    std::str::from_utf8(binary.as_slice()).ok()
}
