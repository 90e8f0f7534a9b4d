//! JSON → terms, built as the text is parsed.

use rustler::sys::{enif_make_list_from_array, enif_make_map_from_arrays, ErlNifTerm};
use rustler::{BigInt, Encoder, Env, NewBinary, Term};

use super::MAX_DEPTH;
use crate::atoms;

/// An integer that may not fit in 64 bits, from its decimal digits: off the common path (it
/// allocates), and exact whatever its size.
fn big_integer<'a>(env: Env<'a>, digits: &str) -> Term<'a> {
    match digits.parse::<u64>() {
        Ok(n) => n.encode(env),
        Err(_) => match digits.parse::<i64>() {
            Ok(n) => n.encode(env),
            Err(_) => digits
                .parse::<BigInt>()
                .expect("JSON integer digits")
                .encode(env),
        },
    }
}

/// Bytes the parser has checked to be ASCII (a number's).
fn ascii(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).expect("ASCII")
}

/// Why a worker's JSON result could not become a term.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// Arrays and objects nested deeper than [`MAX_DEPTH`]; `offset` is the opening bracket's.
    TooDeep { offset: usize },
    /// Not JSON, or JSON no term stands for (a lone surrogate, a float beyond `f64`).
    Invalid { reason: &'static str, offset: usize },
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::TooDeep { offset } => write!(
                f,
                "result nested deeper than {MAX_DEPTH} levels (the limit both ways) at byte {offset}"
            ),
            DecodeError::Invalid { reason, offset } => {
                write!(f, "undecodable result: {reason} at byte {offset}")
            }
        }
    }
}

/// Builds a term from JSON text in `env`.
pub fn json_to_term<'a>(env: Env<'a>, json: &[u8]) -> Result<Term<'a>, DecodeError> {
    // Validated once here: a string's bytes between its (ASCII) quotes are then UTF-8 too.
    if let Err(error) = std::str::from_utf8(json) {
        return Err(DecodeError::Invalid {
            reason: "invalid UTF-8",
            offset: error.valid_up_to(),
        });
    }
    let mut parser = Parser {
        env,
        json,
        at: 0,
        depth: 0,
        keys: Vec::new(),
        values: Vec::new(),
        scratch: Vec::new(),
    };
    let term = parser.value()?;
    parser.skip_whitespace();
    if parser.at < json.len() {
        return Err(parser.invalid("trailing characters after the value"));
    }
    Ok(term)
}

/// A recursive-descent JSON parser (RFC 8259) building terms as it reads.
struct Parser<'a, 'j> {
    env: Env<'a>,
    json: &'j [u8],
    /// Offset of the next byte to read.
    at: usize,
    /// Arrays and objects open around the current position.
    depth: usize,
    /// Keys and values of the objects and arrays being read, innermost last: one buffer each
    /// for the whole text rather than a vector per array, and terms as the NIF API takes them.
    keys: Vec<ErlNifTerm>,
    values: Vec<ErlNifTerm>,
    /// A string with escapes, unescaped.
    scratch: Vec<u8>,
}

impl<'a> Parser<'a, '_> {
    fn value(&mut self) -> Result<Term<'a>, DecodeError> {
        match self.token() {
            Some(b'[') => self.array(),
            Some(b'{') => self.object(),
            Some(b'"') => self.string(),
            Some(b't') => self.literal(b"true", atoms::true_()),
            Some(b'f') => self.literal(b"false", atoms::false_()),
            Some(b'n') => self.literal(b"null", atoms::nil()),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => Err(self.invalid("expected a value")),
            None => Err(self.invalid("unexpected end of input, expected a value")),
        }
    }

    /// Enters an array or object, refusing one level too deep before recursing into it.
    fn enter(&mut self) -> Result<(), DecodeError> {
        if self.depth >= MAX_DEPTH {
            return Err(DecodeError::TooDeep { offset: self.at });
        }
        self.depth += 1;
        self.at += 1;
        Ok(())
    }

    fn array(&mut self) -> Result<Term<'a>, DecodeError> {
        self.enter()?;
        let base = self.values.len();
        self.skip_whitespace();
        if self.peek() == Some(b']') {
            self.at += 1;
        } else {
            loop {
                let item = self.value()?;
                self.values.push(item.as_c_arg());
                match self.token() {
                    Some(b',') => self.at += 1,
                    Some(b']') => {
                        self.at += 1;
                        break;
                    }
                    _ => return Err(self.invalid("expected `,` or `]`")),
                }
            }
        }
        let items = &self.values[base..];
        // SAFETY: every item is a term of `self.env`, made during this call.
        let list = unsafe {
            Term::new(
                self.env,
                enif_make_list_from_array(self.env.as_c_arg(), items.as_ptr(), items.len() as u32),
            )
        };
        self.values.truncate(base);
        self.depth -= 1;
        Ok(list)
    }

    fn object(&mut self) -> Result<Term<'a>, DecodeError> {
        self.enter()?;
        let (key_base, value_base) = (self.keys.len(), self.values.len());
        if self.token() == Some(b'}') {
            self.at += 1;
        } else {
            loop {
                if self.token() != Some(b'"') {
                    return Err(self.invalid("expected a string key"));
                }
                let key = self.string()?;
                if self.token() != Some(b':') {
                    return Err(self.invalid("expected `:`"));
                }
                self.at += 1;
                let value = self.value()?;
                self.keys.push(key.as_c_arg());
                self.values.push(value.as_c_arg());
                match self.token() {
                    Some(b',') => self.at += 1,
                    Some(b'}') => {
                        self.at += 1;
                        break;
                    }
                    _ => return Err(self.invalid("expected `,` or `}`")),
                }
            }
        }
        let map = self.make_map(key_base, value_base);
        self.keys.truncate(key_base);
        self.values.truncate(value_base);
        self.depth -= 1;
        Ok(map)
    }

    /// The map of the entries above `key_base` / `value_base`.
    fn make_map(&self, key_base: usize, value_base: usize) -> Term<'a> {
        let (keys, values) = (&self.keys[key_base..], &self.values[value_base..]);
        let mut map = ErlNifTerm::default();
        // SAFETY: keys and values are terms of `self.env`, as many of each.
        let made = unsafe {
            enif_make_map_from_arrays(
                self.env.as_c_arg(),
                keys.as_ptr(),
                values.as_ptr(),
                keys.len(),
                &mut map,
            )
        };
        if made != 0 {
            // SAFETY: made by the NIF API in `self.env`.
            return unsafe { Term::new(self.env, map) };
        }
        // Duplicate keys: JSON allows them, maps do not; the last one wins, as in Python.
        let mut map = Term::map_new(self.env);
        for (&key, &value) in keys.iter().zip(values) {
            // SAFETY: as above.
            let (key, value) = unsafe { (Term::new(self.env, key), Term::new(self.env, value)) };
            map = map.map_put(key, value).expect("map_put on a map");
        }
        map
    }

    /// Reads a string at its opening quote, as a binary.
    fn string(&mut self) -> Result<Term<'a>, DecodeError> {
        self.at += 1;
        let start = self.at;
        self.skip_plain_text();
        if self.peek() == Some(b'"') {
            // No escapes: the text as it is.
            self.at += 1;
            return Ok(self.binary(&self.json[start..self.at - 1]));
        }
        // An escape (or an error): unescaped into a buffer kept for the next string.
        let mut text = std::mem::take(&mut self.scratch);
        text.clear();
        text.extend_from_slice(&self.json[start..self.at]);
        let result = self.escaped_string_rest(&mut text);
        let term = result.map(|()| self.binary(&text));
        self.scratch = text;
        term
    }

    /// The rest of a string from its first escape, unescaped into `text`.
    fn escaped_string_rest(&mut self, text: &mut Vec<u8>) -> Result<(), DecodeError> {
        loop {
            let start = self.at;
            self.skip_plain_text();
            text.extend_from_slice(&self.json[start..self.at]);
            match self.peek() {
                Some(b'"') => {
                    self.at += 1;
                    return Ok(());
                }
                Some(b'\\') => {
                    self.at += 1;
                    let unescaped = match self.peek() {
                        Some(b'"') => b'"',
                        Some(b'\\') => b'\\',
                        Some(b'/') => b'/',
                        Some(b'b') => 0x08,
                        Some(b'f') => 0x0c,
                        Some(b'n') => b'\n',
                        Some(b'r') => b'\r',
                        Some(b't') => b'\t',
                        Some(b'u') => {
                            self.at += 1;
                            let c = self.unicode_escape()?;
                            text.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
                            continue;
                        }
                        _ => return Err(self.invalid("invalid escape in a string")),
                    };
                    self.at += 1;
                    text.push(unescaped);
                }
                Some(_) => return Err(self.invalid("control character in a string")),
                None => return Err(self.invalid("unterminated string")),
            }
        }
    }

    /// Skips bytes that stand for themselves in a string: not `"`, `\` or a control character.
    fn skip_plain_text(&mut self) {
        let rest = &self.json[self.at..];
        let plain = rest
            .iter()
            .position(|&byte| byte == b'"' || byte == b'\\' || byte < 0x20)
            .unwrap_or(rest.len());
        self.at += plain;
    }

    /// The character of a `\uXXXX` escape (after `\u`), or of a surrogate pair of two.
    fn unicode_escape(&mut self) -> Result<char, DecodeError> {
        let first = self.hex4()?;
        let code = match first {
            0xD800..=0xDBFF => {
                if self.json[self.at..].starts_with(b"\\u") {
                    self.at += 2;
                } else {
                    return Err(self.invalid("lone surrogate in a string"));
                }
                let second = self.hex4()?;
                if !(0xDC00..=0xDFFF).contains(&second) {
                    return Err(self.invalid("lone surrogate in a string"));
                }
                0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00)
            }
            0xDC00..=0xDFFF => return Err(self.invalid("lone surrogate in a string")),
            _ => first,
        };
        Ok(char::from_u32(code).expect("not a surrogate"))
    }

    fn hex4(&mut self) -> Result<u32, DecodeError> {
        let digits = self
            .json
            .get(self.at..self.at + 4)
            .ok_or_else(|| self.invalid("truncated \\u escape"))?;
        let mut code = 0;
        for &digit in digits {
            let value = (digit as char)
                .to_digit(16)
                .ok_or_else(|| self.invalid("invalid \\u escape"))?;
            code = code * 16 + value;
        }
        self.at += 4;
        Ok(code)
    }

    /// A number: an integer (of any size) unless it has a fraction or an exponent.
    fn number(&mut self) -> Result<Term<'a>, DecodeError> {
        let start = self.at;
        let negative = self.peek() == Some(b'-');
        if negative {
            self.at += 1;
        }
        // `0` or digits not starting with `0`.
        let int_digits = match self.peek() {
            Some(b'0') => 1,
            _ => self.count_digits(),
        };
        if int_digits == 0 {
            return Err(self.invalid("expected a digit"));
        }
        self.at += int_digits;
        let mut float = false;
        if self.peek() == Some(b'.') {
            float = true;
            self.at += 1;
            self.digits("expected a digit after `.`")?;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            float = true;
            self.at += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.at += 1;
            }
            self.digits("expected a digit in the exponent")?;
        }
        let text = &self.json[start..self.at];
        if float {
            // Rust's parser rounds correctly: the float the worker printed, bit for bit.
            return match ascii(text).parse::<f64>() {
                Ok(value) if value.is_finite() => Ok(value.encode(self.env)),
                _ => Err(DecodeError::Invalid {
                    reason: "number beyond the range of a float",
                    offset: start,
                }),
            };
        }
        // Up to 19 digits cannot overflow a u64.
        if int_digits <= 19 {
            let magnitude = text[usize::from(negative)..]
                .iter()
                .fold(0u64, |n, digit| n * 10 + u64::from(digit - b'0'));
            if !negative {
                return Ok(magnitude.encode(self.env));
            }
            if magnitude <= 1 << 63 {
                // `wrapping_neg` maps 2^63 to i64::MIN.
                return Ok((magnitude as i64).wrapping_neg().encode(self.env));
            }
        }
        Ok(big_integer(self.env, ascii(text)))
    }

    /// Skips one or more digits.
    fn digits(&mut self, reason: &'static str) -> Result<(), DecodeError> {
        let count = self.count_digits();
        if count == 0 {
            return Err(self.invalid(reason));
        }
        self.at += count;
        Ok(())
    }

    fn count_digits(&self) -> usize {
        let rest = &self.json[self.at..];
        rest.iter()
            .position(|byte| !byte.is_ascii_digit())
            .unwrap_or(rest.len())
    }

    fn literal(&mut self, word: &[u8], atom: rustler::Atom) -> Result<Term<'a>, DecodeError> {
        if !self.json[self.at..].starts_with(word) {
            return Err(self.invalid("expected a value"));
        }
        self.at += word.len();
        Ok(atom.to_term(self.env))
    }

    fn binary(&self, bytes: &[u8]) -> Term<'a> {
        let mut binary = NewBinary::new(self.env, bytes.len());
        binary.as_mut_slice().copy_from_slice(bytes);
        binary.into()
    }

    fn peek(&self) -> Option<u8> {
        self.json.get(self.at).copied()
    }

    /// The next byte that is not whitespace (not consumed).
    fn token(&mut self) -> Option<u8> {
        self.skip_whitespace();
        self.peek()
    }

    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.at += 1;
        }
    }

    fn invalid(&self, reason: &'static str) -> DecodeError {
        DecodeError::Invalid {
            reason,
            offset: self.at,
        }
    }
}
