//! The executor's JSON tree: what subgraph responses are parsed into, merged in and
//! shaped from.
//!
//! `serde_json::Value` with `preserve_order` keeps every object as an `IndexMap`: two
//! allocations per object, a `String` per key and a SipHash per lookup. A GraphQL
//! response object has a handful of fields, so here an object is a `Vec` of
//! `(key, value)` pairs searched in order, and keys and string values are [`SmolStr`]s
//! (no allocation up to 23 bytes, a shared buffer beyond, so copying an entity for a
//! second producer copies no string). A merge of two large objects (a subgraph answering thousands of fields
//! on one object) builds a hash index for that merge instead of searching linearly, so
//! no subgraph response makes a merge quadratic.
//!
//! Duplicate keys in a subgraph's JSON are kept as sent; lookups find the first.
//! Nesting is bounded by serde_json's recursion limit (128) when parsing, so the
//! recursive functions here (merge, conversion, drop) are bounded too.

use std::collections::HashMap;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use serde_json::{Map, Number, Value};
use smol_str::SmolStr;

/// An object key.
pub type Key = SmolStr;

/// A JSON value of the executor's tree.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub enum Val {
    #[default]
    Null,
    Bool(bool),
    Number(Number),
    /// Strings up to 23 bytes (most ids, names and enum values) are stored inline.
    String(SmolStr),
    Array(Vec<Val>),
    Object(Obj),
}

/// A JSON object: fields in the order they were sent or inserted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Obj(Vec<(Key, Val)>);

/// Above this many key comparisons, a merge indexes the target object by key.
const LINEAR_MERGE_LIMIT: usize = 256;

impl Obj {
    pub fn new() -> Self {
        Obj(Vec::new())
    }

    pub fn with_capacity(n: usize) -> Self {
        Obj(Vec::with_capacity(n))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&Key, &Val)> {
        self.0.iter().map(|(k, v)| (k, v))
    }

    fn position(&self, key: &str) -> Option<usize> {
        self.0.iter().position(|(k, _)| k == key)
    }

    pub fn get(&self, key: &str) -> Option<&Val> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub fn get_mut(&mut self, key: &str) -> Option<&mut Val> {
        self.0.iter_mut().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.position(key).is_some()
    }

    /// Sets `key` (in place if present, else appended).
    pub fn insert(&mut self, key: impl Into<Key> + AsRef<str>, value: Val) {
        match self.position(key.as_ref()) {
            Some(i) => self.0[i].1 = value,
            None => self.0.push((key.into(), value)),
        }
    }

    /// The fields, to reorder in place (shaping).
    pub(crate) fn fields_mut(&mut self) -> &mut Vec<(Key, Val)> {
        &mut self.0
    }

    /// Appends without looking for `key` (the caller knows it is new).
    pub fn push(&mut self, key: Key, value: Val) {
        self.0.push((key, value));
    }

    /// Removes `key`, keeping the order of the others.
    pub fn remove(&mut self, key: &str) -> Option<Val> {
        let i = self.position(key)?;
        Some(self.0.remove(i).1)
    }

    /// Renames `key` to `to` (moving it to the end, as remove + insert would).
    pub fn rename(&mut self, key: &str, to: &str) {
        if let Some(found) = self.remove(key) {
            self.insert(to, found);
        }
    }

    /// Deep-merges `source` into `self` (see [`merge`]).
    pub fn merge_from(&mut self, source: Obj) {
        self.0.reserve(source.0.len());
        if self.0.len().saturating_mul(source.0.len()) <= LINEAR_MERGE_LIMIT {
            for (k, v) in source.0 {
                match self.position(&k) {
                    Some(i) => merge(&mut self.0[i].1, v),
                    None => self.0.push((k, v)),
                }
            }
            return;
        }
        let mut index: HashMap<Key, usize> = HashMap::with_capacity(self.0.len());
        for (i, (k, _)) in self.0.iter().enumerate() {
            index.entry(k.clone()).or_insert(i);
        }
        for (k, v) in source.0 {
            match index.get(&k) {
                Some(&i) => merge(&mut self.0[i].1, v),
                None => {
                    index.insert(k.clone(), self.0.len());
                    self.0.push((k, v));
                }
            }
        }
    }
}

impl IntoIterator for Obj {
    type Item = (Key, Val);
    type IntoIter = std::vec::IntoIter<(Key, Val)>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl FromIterator<(Key, Val)> for Obj {
    fn from_iter<I: IntoIterator<Item = (Key, Val)>>(iter: I) -> Self {
        Obj(iter.into_iter().collect())
    }
}

impl Val {
    pub fn is_null(&self) -> bool {
        matches!(self, Val::Null)
    }

    pub fn is_object(&self) -> bool {
        matches!(self, Val::Object(_))
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Val::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_object(&self) -> Option<&Obj> {
        match self {
            Val::Object(o) => Some(o),
            _ => None,
        }
    }

    pub fn as_object_mut(&mut self) -> Option<&mut Obj> {
        match self {
            Val::Object(o) => Some(o),
            _ => None,
        }
    }

    /// The field `key` of an object (`None` for anything else).
    pub fn get(&self, key: &str) -> Option<&Val> {
        self.as_object()?.get(key)
    }

    pub fn get_mut(&mut self, key: &str) -> Option<&mut Val> {
        self.as_object_mut()?.get_mut(key)
    }

    /// Item `i` of a list (`None` for anything else).
    pub fn at(&self, i: usize) -> Option<&Val> {
        match self {
            Val::Array(items) => items.get(i),
            _ => None,
        }
    }

    pub fn at_mut(&mut self, i: usize) -> Option<&mut Val> {
        match self {
            Val::Array(items) => items.get_mut(i),
            _ => None,
        }
    }

    /// The same value as a `serde_json::Value`.
    pub fn into_json(self) -> Value {
        match self {
            Val::Null => Value::Null,
            Val::Bool(b) => Value::Bool(b),
            Val::Number(n) => Value::Number(n),
            Val::String(s) => Value::String(s.into()),
            Val::Array(items) => Value::Array(items.into_iter().map(Val::into_json).collect()),
            Val::Object(o) => {
                let mut map = Map::with_capacity(o.len());
                for (k, v) in o {
                    map.insert(k.into(), v.into_json());
                }
                Value::Object(map)
            }
        }
    }
}

impl From<Value> for Val {
    fn from(value: Value) -> Self {
        match value {
            Value::Null => Val::Null,
            Value::Bool(b) => Val::Bool(b),
            Value::Number(n) => Val::Number(n),
            Value::String(s) => Val::String(s.into()),
            Value::Array(items) => Val::Array(items.into_iter().map(Val::from).collect()),
            Value::Object(map) => Val::Object(
                map.into_iter()
                    .map(|(k, v)| (Key::from(k), Val::from(v)))
                    .collect(),
            ),
        }
    }
}

impl From<&str> for Val {
    fn from(s: &str) -> Self {
        Val::String(SmolStr::new(s))
    }
}

impl portico_federation::cost::ResponseTree for Val {
    fn node(&self) -> portico_federation::cost::ResponseNode<'_, Self> {
        use portico_federation::cost::ResponseNode;
        match self {
            Val::Null => ResponseNode::Null,
            Val::Array(items) => ResponseNode::List(items),
            Val::Object(_) => ResponseNode::Object,
            _ => ResponseNode::Leaf,
        }
    }

    fn field(&self, key: &str) -> Option<&Self> {
        self.get(key)
    }

    fn string(&self) -> Option<&str> {
        self.as_str()
    }
}

/// Deep merge: objects by key, equal-length lists item by item; a null never erases a
/// value another subgraph provided.
pub(crate) fn merge(target: &mut Val, source: Val) {
    match (target, source) {
        (Val::Object(t), Val::Object(s)) => t.merge_from(s),
        (Val::Array(t), Val::Array(s)) if t.len() == s.len() => {
            for (tv, sv) in t.iter_mut().zip(s) {
                merge(tv, sv);
            }
        }
        (t, Val::Null) if !t.is_null() => {}
        (t, s) => *t = s,
    }
}

impl Serialize for Val {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Val::Null => serializer.serialize_unit(),
            Val::Bool(b) => serializer.serialize_bool(*b),
            Val::Number(n) => n.serialize(serializer),
            Val::String(s) => serializer.serialize_str(s),
            Val::Array(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Val::Object(o) => o.serialize(serializer),
        }
    }
}

impl Serialize for Obj {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k.as_str(), v)?;
        }
        map.end()
    }
}

impl Val {
    /// Appends this value as compact JSON, byte for byte what `serde_json::to_writer`
    /// writes for it, faster: strings are scanned for characters to escape eight bytes
    /// at a time (serde_json looks each byte up in a table), and nesting is walked with
    /// an explicit stack, not the thread's.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        enum Frame<'v> {
            Array(std::slice::Iter<'v, Val>),
            Object(std::slice::Iter<'v, (Key, Val)>),
        }
        let mut stack: Vec<(Frame<'_>, bool)> = Vec::new();
        let mut next = Some(self);
        loop {
            if let Some(value) = next.take() {
                match value {
                    Val::Null => out.extend_from_slice(b"null"),
                    Val::Bool(true) => out.extend_from_slice(b"true"),
                    Val::Bool(false) => out.extend_from_slice(b"false"),
                    Val::Number(n) => write_number(out, n),
                    Val::String(s) => write_json_str(out, s),
                    Val::Array(items) => {
                        out.push(b'[');
                        stack.push((Frame::Array(items.iter()), true));
                    }
                    Val::Object(o) => {
                        out.push(b'{');
                        stack.push((Frame::Object(o.0.iter()), true));
                    }
                }
            }
            let Some((frame, first)) = stack.last_mut() else {
                return;
            };
            let more = match frame {
                Frame::Array(items) => items.next().map(|v| (None, v)),
                Frame::Object(fields) => fields.next().map(|(k, v)| (Some(k), v)),
            };
            match more {
                Some((key, value)) => {
                    if !std::mem::replace(first, false) {
                        out.push(b',');
                    }
                    if let Some(key) = key {
                        write_json_str(out, key);
                        out.push(b':');
                    }
                    next = Some(value);
                }
                None => {
                    out.push(match frame {
                        Frame::Array(_) => b']',
                        Frame::Object(_) => b'}',
                    });
                    stack.pop();
                }
            }
        }
    }
}

/// A number as serde_json writes it (writing to a `Vec` cannot fail).
fn write_number(out: &mut Vec<u8>, n: &Number) {
    let _ = n.serialize(&mut serde_json::Serializer::new(&mut *out));
}

/// `s` as a JSON string, escaped as serde_json escapes it: `"`, `\\`, and the control
/// characters (`\b \t \n \f \r`, the others as `\u00xx`); nothing else.
pub(crate) fn write_json_str(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut start = 0;
    while let Some(i) = next_escape(bytes, start) {
        out.extend_from_slice(&bytes[start..i]);
        let b = bytes[i];
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0x08 => out.extend_from_slice(b"\\b"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            0x0c => out.extend_from_slice(b"\\f"),
            b'\r' => out.extend_from_slice(b"\\r"),
            _ => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 0xf)]);
            }
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// The index of the first byte at or after `from` that JSON escapes (below 0x20, `"` or
/// `\\`), eight bytes at a time.
fn next_escape(bytes: &[u8], mut from: usize) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    /// A flag in the high bit of each byte of `w` that may need escaping. The lowest flag
    /// is always right (a borrow only flags bytes above a true one), so it locates the
    /// first such byte.
    fn flags(w: u64) -> u64 {
        let control = w.wrapping_sub(ONES * 0x20) & !w;
        let quote = w ^ (ONES * u64::from(b'"'));
        let quote = quote.wrapping_sub(ONES) & !quote;
        let backslash = w ^ (ONES * u64::from(b'\\'));
        let backslash = backslash.wrapping_sub(ONES) & !backslash;
        (control | quote | backslash) & HIGH
    }
    let at = |base: usize, f: u64| base + (f.trailing_zeros() / 8) as usize;
    let mut chunks = bytes.get(from..)?.chunks_exact(8);
    for chunk in chunks.by_ref() {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let f = flags(u64::from_le_bytes(word));
        if f != 0 {
            return Some(at(from, f));
        }
        from += 8;
    }
    // The last few bytes one by one.
    chunks
        .remainder()
        .iter()
        .position(|&b| b < 0x20 || b == b'"' || b == b'\\')
        .map(|i| from + i)
}

impl<'de> Deserialize<'de> for Val {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ValVisitor)
    }
}

struct ValVisitor;

impl<'de> Visitor<'de> for ValVisitor {
    type Value = Val;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, b: bool) -> Result<Val, E> {
        Ok(Val::Bool(b))
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<Val, E> {
        Ok(Val::Number(n.into()))
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<Val, E> {
        Ok(Val::Number(n.into()))
    }

    fn visit_f64<E: de::Error>(self, n: f64) -> Result<Val, E> {
        Ok(Number::from_f64(n).map_or(Val::Null, Val::Number))
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Val, E> {
        Ok(Val::String(SmolStr::new(s)))
    }

    fn visit_string<E: de::Error>(self, s: String) -> Result<Val, E> {
        Ok(Val::String(s.into()))
    }

    fn visit_none<E: de::Error>(self) -> Result<Val, E> {
        Ok(Val::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Val, D::Error> {
        Deserialize::deserialize(d)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Val, E> {
        Ok(Val::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Val, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Val::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Val, A::Error> {
        let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(0).min(4096));
        while let Some(key) = map.next_key::<KeyDe>()? {
            fields.push((key.0, map.next_value()?));
        }
        Ok(Val::Object(Obj(fields)))
    }
}

/// An object key, deserialized without an intermediate `String`.
struct KeyDe(Key);

impl<'de> Deserialize<'de> for KeyDe {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = KeyDe;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<KeyDe, E> {
                Ok(KeyDe(Key::new(s)))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn val(v: Value) -> Val {
        Val::from(v)
    }

    #[test]
    fn parses_and_serialises_in_order_like_serde_json() {
        let text = r#"{"z":1,"a":[true,null,2.5,-3,"s",{"k":{}}],"m":{"y":"long key value beyond 23 bytes","x":[]}}"#;
        let parsed: Val = serde_json::from_str(text).expect("parse");
        assert_eq!(serde_json::to_string(&parsed).expect("ser"), text);
        let as_json: Value = serde_json::from_str(text).expect("parse");
        assert_eq!(parsed.clone().into_json(), as_json);
        assert_eq!(val(as_json), parsed);
    }

    /// Random strings over an alphabet heavy in what JSON escapes, at every offset of
    /// the eight-byte scan, and random trees of them: `write_json` writes what
    /// serde_json writes, byte for byte.
    #[test]
    fn write_json_is_byte_identical_to_serde_json() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let alphabet: Vec<char> = "ab\"\\\u{0}\u{1}\u{8}\t\n\u{b}\u{c}\r\u{1f} \u{7f}é€😀/<>'"
            .chars()
            .collect();
        let mut random_string = |rng: &mut rand::rngs::StdRng| -> String {
            let len = rng.gen_range(0..40);
            (0..len)
                .map(|_| alphabet[rng.gen_range(0..alphabet.len())])
                .collect()
        };
        for _ in 0..5000 {
            let s = random_string(&mut rng);
            let mut out = Vec::new();
            write_json_str(&mut out, &s);
            assert_eq!(out, serde_json::to_vec(&s).expect("ser"), "{s:?}");
        }
        /// A random tree at most `depth` deep (a test's own bound).
        fn tree(
            rng: &mut rand::rngs::StdRng,
            depth: u32,
            text: &mut dyn FnMut(&mut rand::rngs::StdRng) -> String,
        ) -> Val {
            match rng.gen_range(0..if depth > 0 { 8 } else { 6 }) {
                0 => Val::Null,
                1 => Val::Bool(rng.r#gen()),
                2 => Val::Number(rng.gen_range(-1_000_000i64..1_000_000).into()),
                3 => Number::from_f64(rng.gen_range(-1e30..1e30)).map_or(Val::Null, Val::Number),
                4 => Val::Number(u64::MAX.into()),
                5 => Val::String(text(rng).into()),
                6 => Val::Array(
                    (0..rng.gen_range(0..4))
                        .map(|_| tree(rng, depth - 1, text))
                        .collect(),
                ),
                _ => Val::Object(Obj((0..rng.gen_range(0..4))
                    .map(|_| (Key::from(text(rng)), tree(rng, depth - 1, text)))
                    .collect())),
            }
        }
        for _ in 0..300 {
            let root = tree(&mut rng, 5, &mut random_string);
            let mut out = Vec::new();
            root.write_json(&mut out);
            assert_eq!(out, serde_json::to_vec(&root).expect("ser"));
        }
    }

    #[test]
    fn parsing_keeps_serde_json_depth_limit() {
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        assert!(serde_json::from_str::<Val>(&deep).is_err());
    }

    #[test]
    fn merge_is_deep_and_null_does_not_erase() {
        let mut t = val(json!({"a": {"x": 1}, "l": [{"i": 1}, {"i": 2}], "k": 5}));
        merge(
            &mut t,
            val(json!({"a": {"y": 2}, "l": [{"j": 1}, {"j": 2}], "k": null})),
        );
        assert_eq!(
            t.into_json(),
            json!({"a": {"x": 1, "y": 2}, "l": [{"i": 1, "j": 1}, {"i": 2, "j": 2}], "k": 5})
        );
    }

    #[test]
    fn merging_large_objects_uses_an_index_and_gives_the_same_result() {
        let mut a = Map::new();
        let mut b = Map::new();
        for i in 0..300 {
            a.insert(format!("f{i}"), json!({"a": i}));
            b.insert(format!("f{}", i + 150), json!({"b": i}));
        }
        let mut t = val(Value::Object(a.clone()));
        merge(&mut t, val(Value::Object(b.clone())));
        let merged = t.into_json();
        let merged = merged.as_object().expect("object");
        assert_eq!(merged.len(), 450);
        assert_eq!(merged["f0"], json!({"a": 0}));
        assert_eq!(merged["f200"], json!({"a": 200, "b": 50}));
        assert_eq!(merged["f449"], json!({"b": 299}));
        let keys: Vec<&String> = merged.keys().collect();
        assert_eq!(keys[300], "f300");
    }

    #[test]
    fn object_edits_keep_order() {
        let mut o = Obj::new();
        o.insert("a", Val::Null);
        o.insert("b", Val::Bool(true));
        o.insert("a", Val::from("x"));
        o.rename("a", "c");
        assert_eq!(
            Val::Object(o.clone()).into_json(),
            json!({"b": true, "c": "x"})
        );
        assert_eq!(o.remove("b"), Some(Val::Bool(true)));
        assert!(!o.contains_key("b"));
    }

    #[test]
    fn duplicate_keys_are_kept_and_the_first_is_found() {
        let parsed: Val = serde_json::from_str(r#"{"a":1,"a":2}"#).expect("parse");
        assert_eq!(parsed.get("a"), Some(&Val::Number(1.into())));
    }
}
