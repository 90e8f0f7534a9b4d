//! Terms ↔ JSON.
//!
//! Encoding walks the term once and writes JSON straight into the request frame, keeping the path
//! from the root so that a term that cannot cross (a pid, a ref, a fun, a port, a non-UTF-8 binary,
//! an improper list, an integer beyond 64 bits) is reported with where it was, e.g.
//! `args.user["ids"][2]`. Decoding builds terms directly from the JSON text (no intermediate
//! `serde_json::Value`): objects become maps with string keys, arrays lists, `null` `nil`.

use std::fmt::Write as _;

use rustler::types::tuple::get_tuple;
use rustler::{Binary, Encoder, Env, MapIterator, Term, TermType};
use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::atoms;

/// Deepest nesting accepted, as for replies (serde_json's limit): the encoder recurses, and a
/// scheduler thread's stack is small.
pub const MAX_DEPTH: usize = 128;

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
        if self.path.len() >= MAX_DEPTH {
            return Err(self.error("terms nested deeper than 128 levels cannot be sent"));
        }
        match term.get_type() {
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
        let text = if let Ok(value) = term.decode::<i64>() {
            digits.format(value)
        } else if let Ok(value) = term.decode::<u64>() {
            digits.format(value)
        } else {
            return Err(self.error("integer does not fit in 64 bits"));
        };
        self.out.extend_from_slice(text.as_bytes());
        Ok(())
    }

    fn write_map(&mut self, term: Term<'a>) -> Result<(), EncodeError> {
        let entries = MapIterator::new(term).ok_or_else(|| self.error("unreadable map"))?;
        self.out.push(b'{');
        for (index, (key, value)) in entries.enumerate() {
            if index > 0 {
                self.out.push(b',');
            }
            self.write_key(key)?;
            self.out.push(b':');
            self.path.push(Step::Key(key));
            self.write(value)?;
            self.path.pop();
        }
        self.out.push(b'}');
        Ok(())
    }

    /// JSON keys are strings: atoms and UTF-8 binaries as they are, integers in decimal.
    fn write_key(&mut self, key: Term<'a>) -> Result<(), EncodeError> {
        match key.get_type() {
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
                    TermType::Integer => match (key.decode::<i64>(), key.decode::<u64>()) {
                        (Ok(n), _) => write!(path, "[{n}]").unwrap(),
                        (_, Ok(n)) => write!(path, "[{n}]").unwrap(),
                        _ => path.push_str("[<big integer>]"),
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

fn utf8(term: Term<'_>) -> Option<&str> {
    let binary = Binary::from_term(term).ok()?;
    std::str::from_utf8(binary.as_slice()).ok()
}

/// Writes `text` as a JSON string literal (serde_json's escaping).
pub fn write_json_str(out: &mut Vec<u8>, text: &str) {
    serde_json::to_writer(out, text).expect("writing to a Vec cannot fail");
}

/// Builds a term from JSON text in `env`.
pub fn json_to_term<'a>(env: Env<'a>, json: &str) -> Result<Term<'a>, serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_str(json);
    let term = TermSeed(env).deserialize(&mut deserializer)?;
    deserializer.end()?;
    Ok(term)
}

/// serde seed producing a term in the given environment.
pub struct TermSeed<'a>(pub Env<'a>);

impl<'de, 'a> DeserializeSeed<'de> for TermSeed<'a> {
    type Value = Term<'a>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Term<'a>, D::Error> {
        deserializer.deserialize_any(TermVisitor(self.0))
    }
}

struct TermVisitor<'a>(Env<'a>);

impl<'de, 'a> Visitor<'de> for TermVisitor<'a> {
    type Value = Term<'a>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<Term<'a>, E> {
        Ok(value.encode(self.0))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Term<'a>, E> {
        Ok(value.encode(self.0))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Term<'a>, E> {
        Ok(value.encode(self.0))
    }

    fn visit_f64<E>(self, value: f64) -> Result<Term<'a>, E> {
        Ok(value.encode(self.0))
    }

    fn visit_str<E>(self, value: &str) -> Result<Term<'a>, E> {
        Ok(value.encode(self.0))
    }

    fn visit_unit<E>(self) -> Result<Term<'a>, E> {
        Ok(atoms::nil().encode(self.0))
    }

    fn visit_none<E>(self) -> Result<Term<'a>, E> {
        Ok(atoms::nil().encode(self.0))
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Term<'a>, D::Error> {
        d.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Term<'a>, A::Error> {
        let mut items: Vec<Term<'a>> = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element_seed(TermSeed(self.0))? {
            items.push(item);
        }
        Ok(items.encode(self.0))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Term<'a>, A::Error> {
        let mut keys: Vec<Term<'a>> = Vec::new();
        let mut values: Vec<Term<'a>> = Vec::new();
        while let Some(key) = map.next_key_seed(TermSeed(self.0))? {
            keys.push(key);
            values.push(map.next_value_seed(TermSeed(self.0))?);
        }
        match Term::map_from_term_arrays(self.0, &keys, &values) {
            Ok(term) => Ok(term),
            // Duplicate keys: JSON allows them, maps do not; the last one wins, as in Python.
            Err(_) => {
                let mut term = Term::map_new(self.0);
                for (key, value) in keys.into_iter().zip(values) {
                    term = term.map_put(key, value).expect("map_put on a map");
                }
                Ok(term)
            }
        }
    }
}
