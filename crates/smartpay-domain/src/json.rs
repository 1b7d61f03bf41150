//! A strict JSON reader for request bodies.
//!
//! It exists because request validation needs what `serde_json` does not give in one pass:
//! the exact text of every number (amounts are parsed from it, never through `f64`), object
//! members in order with duplicate keys refused, a nesting limit, and errors that name the
//! line and column where a merchant's body went wrong (RFC 8259 grammar, UTF-8 only).

use std::collections::HashSet;
use std::fmt;

/// Deepest nesting of arrays and objects a body may have.
pub const MAX_DEPTH: usize = 32;

/// Members an object may have before its duplicate check switches from a scan to a hash set.
/// Below this a scan is cheaper than hashing; above it the scan would make parsing quadratic.
const SCAN_LIMIT: usize = 8;

/// A parsed JSON value. Numbers keep their source text.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    /// The number exactly as written, e.g. `10.99` or `1e2`.
    Number(String),
    String(String),
    Array(Vec<Value>),
    /// Members in document order; keys are unique.
    Object(Vec<(String, Value)>),
}

impl Value {
    /// The JSON type's name, as used in error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        }
    }

    /// The text of a string value.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// Looks a member up in an object.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Object(members) => members.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
}

/// What went wrong, and where (1-based line and column, counted in characters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub kind: SyntaxErrorKind,
    pub line: usize,
    pub column: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyntaxErrorKind {
    UnexpectedEnd,
    UnexpectedCharacter(char),
    TrailingComma,
    TrailingCharacters,
    InvalidNumber,
    InvalidEscape,
    InvalidUnicode,
    ControlCharacterInString,
    InvalidUtf8,
    DuplicateKey(String),
    TooDeep,
    ExpectedColon,
    ExpectedCommaOrEnd,
    KeyMustBeString,
}

impl fmt::Display for SyntaxErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnexpectedEnd => write!(f, "unexpected end of input"),
            Self::UnexpectedCharacter(c) => write!(f, "unexpected character {c:?}"),
            Self::TrailingComma => write!(f, "trailing comma"),
            Self::TrailingCharacters => write!(f, "trailing characters after the JSON value"),
            Self::InvalidNumber => write!(f, "invalid number"),
            Self::InvalidEscape => write!(f, "invalid escape sequence"),
            Self::InvalidUnicode => write!(f, "invalid unicode escape"),
            Self::ControlCharacterInString => write!(f, "control character in string"),
            Self::InvalidUtf8 => write!(f, "invalid UTF-8"),
            Self::DuplicateKey(k) => write!(f, "duplicate key {k:?}"),
            Self::TooDeep => write!(f, "nesting deeper than {MAX_DEPTH} levels"),
            Self::ExpectedColon => write!(f, "expected ':'"),
            Self::ExpectedCommaOrEnd => write!(f, "expected ',' or a closing bracket"),
            Self::KeyMustBeString => write!(f, "object keys must be strings"),
        }
    }
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at line {} column {}", self.kind, self.line, self.column)
    }
}

impl std::error::Error for SyntaxError {}

/// Parses a whole document; anything but whitespace after the value is an error.
pub fn parse(input: &[u8]) -> Result<Value, SyntaxError> {
    let text = match std::str::from_utf8(input) {
        Ok(t) => t,
        Err(e) => {
            let valid = &input[..e.valid_up_to()];
            let text = String::from_utf8_lossy(valid);
            let (line, column) = position(&text, text.len());
            return Err(SyntaxError { kind: SyntaxErrorKind::InvalidUtf8, line, column });
        }
    };
    let mut p = Parser { src: text, bytes: text.as_bytes(), pos: 0 };
    p.skip_ws();
    let v = p.value(0)?;
    p.skip_ws();
    if p.pos < p.bytes.len() {
        return Err(p.err(SyntaxErrorKind::TrailingCharacters));
    }
    Ok(v)
}

fn position(text: &str, byte: usize) -> (usize, usize) {
    let before = &text[..byte.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

struct Parser<'a> {
    src: &'a str,
    bytes: &'a [u8],
    pos: usize,
}

impl Parser<'_> {
    fn err(&self, kind: SyntaxErrorKind) -> SyntaxError {
        self.err_at(kind, self.pos)
    }

    fn err_at(&self, kind: SyntaxErrorKind, at: usize) -> SyntaxError {
        // `at` is always on a char boundary: the parser only stops on ASCII bytes or at the end.
        let at = (0..=at.min(self.src.len())).rev().find(|i| self.src.is_char_boundary(*i)).unwrap_or(0);
        let (line, column) = position(self.src, at);
        SyntaxError { kind, line, column }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    fn unexpected(&self) -> SyntaxError {
        match self.src[self.pos..].chars().next() {
            Some(c) => self.err(SyntaxErrorKind::UnexpectedCharacter(c)),
            None => self.err(SyntaxErrorKind::UnexpectedEnd),
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, SyntaxError> {
        match self.peek() {
            None => Err(self.err(SyntaxErrorKind::UnexpectedEnd)),
            Some(b'{') => self.object(depth + 1),
            Some(b'[') => self.array(depth + 1),
            Some(b'"') => self.string().map(Value::String),
            Some(b't') => self.literal("true", Value::Bool(true)),
            Some(b'f') => self.literal("false", Value::Bool(false)),
            Some(b'n') => self.literal("null", Value::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => Err(self.unexpected()),
        }
    }

    fn literal(&mut self, word: &str, v: Value) -> Result<Value, SyntaxError> {
        if self.src[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(v)
        } else {
            Err(self.unexpected())
        }
    }

    fn object(&mut self, depth: usize) -> Result<Value, SyntaxError> {
        if depth > MAX_DEPTH {
            return Err(self.err(SyntaxErrorKind::TooDeep));
        }
        self.pos += 1;
        let mut members: Vec<(String, Value)> = Vec::new();
        // Filled only once the object outgrows `SCAN_LIMIT`; std's hasher is randomly keyed,
        // so chosen keys cannot make it collide.
        let mut seen: HashSet<String> = HashSet::new();
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(Value::Object(members));
        }
        loop {
            self.skip_ws();
            match self.peek() {
                Some(b'"') => {}
                Some(b'}') if !members.is_empty() => return Err(self.err(SyntaxErrorKind::TrailingComma)),
                None => return Err(self.err(SyntaxErrorKind::UnexpectedEnd)),
                Some(_) => return Err(self.err(SyntaxErrorKind::KeyMustBeString)),
            }
            let key_at = self.pos;
            let key = self.string()?;
            let duplicate = if members.len() < SCAN_LIMIT {
                members.iter().any(|(k, _)| *k == key)
            } else {
                if seen.is_empty() {
                    seen.extend(members.iter().map(|(k, _)| k.clone()));
                }
                !seen.insert(key.clone())
            };
            if duplicate {
                return Err(self.err_at(SyntaxErrorKind::DuplicateKey(key), key_at));
            }
            self.skip_ws();
            if self.peek() != Some(b':') {
                return Err(match self.peek() {
                    None => self.err(SyntaxErrorKind::UnexpectedEnd),
                    Some(_) => self.err(SyntaxErrorKind::ExpectedColon),
                });
            }
            self.pos += 1;
            self.skip_ws();
            let v = self.value(depth)?;
            members.push((key, v));
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(Value::Object(members));
                }
                None => return Err(self.err(SyntaxErrorKind::UnexpectedEnd)),
                Some(_) => return Err(self.err(SyntaxErrorKind::ExpectedCommaOrEnd)),
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<Value, SyntaxError> {
        if depth > MAX_DEPTH {
            return Err(self.err(SyntaxErrorKind::TooDeep));
        }
        self.pos += 1;
        let mut items = Vec::new();
        self.skip_ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(Value::Array(items));
        }
        loop {
            self.skip_ws();
            if self.peek() == Some(b']') {
                return Err(self.err(SyntaxErrorKind::TrailingComma));
            }
            items.push(self.value(depth)?);
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(Value::Array(items));
                }
                None => return Err(self.err(SyntaxErrorKind::UnexpectedEnd)),
                Some(_) => return Err(self.err(SyntaxErrorKind::ExpectedCommaOrEnd)),
            }
        }
    }

    fn number(&mut self) -> Result<Value, SyntaxError> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => self.digits(),
            _ => return Err(self.err(SyntaxErrorKind::InvalidNumber)),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(self.err(SyntaxErrorKind::InvalidNumber));
            }
            self.digits();
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(self.err(SyntaxErrorKind::InvalidNumber));
            }
            self.digits();
        }
        Ok(Value::Number(self.src[start..self.pos].to_owned()))
    }

    fn digits(&mut self) {
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
    }

    fn hex4(&mut self) -> Result<u16, SyntaxError> {
        let Some(h) = self.src.get(self.pos..self.pos + 4) else {
            return Err(self.err(SyntaxErrorKind::InvalidUnicode));
        };
        let v = u16::from_str_radix(h, 16).map_err(|_| self.err(SyntaxErrorKind::InvalidUnicode))?;
        if !h.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(self.err(SyntaxErrorKind::InvalidUnicode));
        }
        self.pos += 4;
        Ok(v)
    }

    fn string(&mut self) -> Result<String, SyntaxError> {
        self.pos += 1; // opening quote
        let mut out = String::new();
        loop {
            let run_start = self.pos;
            while let Some(b) = self.peek() {
                if b == b'"' || b == b'\\' || b < 0x20 {
                    break;
                }
                self.pos += 1;
            }
            out.push_str(&self.src[run_start..self.pos]);
            match self.peek() {
                None => return Err(self.err(SyntaxErrorKind::UnexpectedEnd)),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.pos += 1;
                    let Some(e) = self.peek() else {
                        return Err(self.err(SyntaxErrorKind::UnexpectedEnd));
                    };
                    self.pos += 1;
                    match e {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let hi = self.hex4()?;
                            let c = if (0xD800..0xDC00).contains(&hi) {
                                if !self.src[self.pos..].starts_with("\\u") {
                                    return Err(self.err(SyntaxErrorKind::InvalidUnicode));
                                }
                                self.pos += 2;
                                let lo = self.hex4()?;
                                if !(0xDC00..0xE000).contains(&lo) {
                                    return Err(self.err(SyntaxErrorKind::InvalidUnicode));
                                }
                                let code = 0x10000 + ((u32::from(hi) - 0xD800) << 10) + (u32::from(lo) - 0xDC00);
                                char::from_u32(code)
                            } else {
                                char::from_u32(u32::from(hi))
                            };
                            match c {
                                Some(c) => out.push(c),
                                None => return Err(self.err(SyntaxErrorKind::InvalidUnicode)),
                            }
                        }
                        _ => return Err(self.err_at(SyntaxErrorKind::InvalidEscape, self.pos - 2)),
                    }
                }
                Some(_) => return Err(self.err(SyntaxErrorKind::ControlCharacterInString)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_integration_guides_sample_is_refused_at_its_trailing_comma() {
        let body = "{\n\"merchantKey\": \"48c4e923-e88c-464b-a4e7-ccb2c6d3775e\",\n\"consumer\": {\n\"firstName\": \"Butcher\",\n\"emailAddress\": \"hells.butcher_001@mail.com\",\n},\n\"x\": 1\n}";
        let e = parse(body.as_bytes()).unwrap_err();
        assert_eq!(e.kind, SyntaxErrorKind::TrailingComma);
        assert_eq!((e.line, e.column), (6, 1));
        assert_eq!(e.to_string(), "trailing comma at line 6 column 1");
    }

    #[test]
    fn numbers_keep_their_source_text() {
        let v = parse(br#"{"a": 10.990, "b": 1e2, "c": -0.5E-3}"#).unwrap();
        assert_eq!(v.get("a"), Some(&Value::Number("10.990".into())));
        assert_eq!(v.get("b"), Some(&Value::Number("1e2".into())));
        assert_eq!(v.get("c"), Some(&Value::Number("-0.5E-3".into())));
    }

    #[test]
    fn duplicate_keys_are_refused_where_the_second_one_starts() {
        let e = parse(b"{\"a\":1,\n \"a\":2}").unwrap_err();
        assert_eq!(e.kind, SyntaxErrorKind::DuplicateKey("a".into()));
        assert_eq!((e.line, e.column), (2, 2));
    }

    #[test]
    fn a_duplicate_is_found_among_many_keys_wherever_it_is() {
        for (first, second) in [(0, 1), (0, 2999), (2998, 2999), (7, 8), (8, 9), (1500, 2999)] {
            let mut members: Vec<String> = (0..3000).map(|i| format!("\"k{i}\":{i}")).collect();
            members[second] = format!("\"k{first}\":0");
            let body = format!("{{{}}}", members.join(","));
            let e = parse(body.as_bytes()).unwrap_err();
            assert_eq!(e.kind, SyntaxErrorKind::DuplicateKey(format!("k{first}")), "{first} and {second}");
            let at = body.find(&format!(",\"k{first}\":0")).unwrap() + 2;
            assert_eq!((e.line, e.column), (1, at), "{first} and {second}");
        }
    }

    fn object_with_keys(count: usize) -> String {
        let members: Vec<String> = (0..count).map(|n| format!("\"{n:x}\":1")).collect();
        format!("{{{}}}", members.join(","))
    }

    #[test]
    fn a_64_kib_object_with_thousands_of_distinct_keys_parses() {
        let body = object_with_keys(7700);
        assert!((60 * 1024..=64 * 1024).contains(&body.len()), "{} bytes", body.len());
        let Value::Object(members) = parse(body.as_bytes()).unwrap() else { panic!("not an object") };
        assert_eq!(members.len(), 7700);
        assert_eq!(members[7699], ("1e13".to_owned(), Value::Number("1".into())));
    }

    #[test]
    fn duplicate_detection_is_linear_in_the_number_of_keys() {
        // 200,000 keys: a pairwise check makes 2·10¹⁰ comparisons (minutes), a set 2·10⁵.
        let body = object_with_keys(200_000);
        let started = std::time::Instant::now();
        assert!(parse(body.as_bytes()).is_ok());
        assert!(started.elapsed() < std::time::Duration::from_secs(5), "took {:?}", started.elapsed());
    }

    #[test]
    fn nesting_is_limited() {
        let deep = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1);
        assert_eq!(parse(deep.as_bytes()).unwrap_err().kind, SyntaxErrorKind::TooDeep);
        let ok = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
        assert!(parse(ok.as_bytes()).is_ok());
    }

    #[test]
    fn invalid_utf8_is_refused_with_its_position() {
        let e = parse(b"{\"a\":\n \"\xff\"}").unwrap_err();
        assert_eq!(e.kind, SyntaxErrorKind::InvalidUtf8);
        assert_eq!((e.line, e.column), (2, 3));
    }

    #[test]
    fn escapes_and_surrogate_pairs_decode() {
        let v = parse(br#""a\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00""#).unwrap();
        assert_eq!(v, Value::String("a\"\\/\u{8}\u{c}\n\r\t\u{e9}\u{1F600}".into()));
        assert!(parse(br#""\ud83d""#).is_err());
        assert!(parse(br#""\x""#).is_err());
    }

    #[test]
    fn malformed_documents_are_refused() {
        for bad in ["", "{", "[1,]", "{\"a\" 1}", "{1:2}", "01", "1.", "-", "1e", "tru", "\"a\nb\"", "{} {}", "[1 2]"] {
            assert!(parse(bad.as_bytes()).is_err(), "{bad:?} was accepted");
        }
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        fn arb_json() -> impl Strategy<Value = serde_json::Value> {
            let leaf = prop_oneof![
                Just(serde_json::Value::Null),
                any::<bool>().prop_map(serde_json::Value::Bool),
                any::<i64>().prop_map(|n| serde_json::json!(n)),
                "[^\"\\\\]{0,8}|\\PC{0,8}".prop_map(serde_json::Value::String),
            ];
            leaf.prop_recursive(4, 32, 6, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::Array),
                    prop::collection::btree_map("[a-z]{1,6}", inner, 0..6)
                        .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
                ]
            })
        }

        proptest! {
            #[test]
            fn accepts_exactly_what_serde_json_writes(v in arb_json()) {
                let text = serde_json::to_string_pretty(&v).unwrap();
                prop_assert!(parse(text.as_bytes()).is_ok());
            }

            #[test]
            fn agrees_with_serde_json_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..40)) {
                // serde_json accepts duplicate keys into a map; we refuse them, so only compare on
                // inputs without objects.
                prop_assume!(!bytes.contains(&b'{') && bytes.iter().filter(|b| **b == b'[').count() <= MAX_DEPTH);
                let ours = parse(&bytes).is_ok();
                let theirs = serde_json::from_slice::<serde_json::Value>(&bytes).is_ok();
                prop_assert_eq!(ours, theirs);
            }

            #[test]
            fn never_panics_on_json_like_text(s in "[\\[\\]{}\",:0-9a-z\\\\ .eE+-]{0,64}") {
                let _ = parse(s.as_bytes());
            }
        }
    }
}
