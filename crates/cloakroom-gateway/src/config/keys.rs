//! Every key `cloakroom.toml` accepts, read from the serde structs themselves.
//!
//! How: serde's derived `Deserialize` for a struct calls
//! `Deserializer::deserialize_struct(name, FIELDS, visitor)` with the list of the keys it
//! accepts (after `rename`/`rename_all`, without `skip`ped fields) *before* it looks at
//! any value. [`Probe`] is a deserializer that records that list at a path and then
//! feeds the struct exactly one key, the next one along the path being explored, so
//! `Config` is walked breadth-first one path at a time. Each walk ends in an error
//! (that is expected — there are no real values); only what was recorded on the way
//! counts. `Option` is followed into `Some`, sequences into one element (`[]` in the
//! path), and anything else (strings, numbers, durations, enums, maps with free keys)
//! is a leaf. Because the list comes from the derive, a field added to any crate's config
//! struct shows up here with no hand-written list to update; the configuration
//! reference test checks each one is documented.

use std::{cell::RefCell, collections::BTreeSet, fmt};

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use super::Config;

impl Config {
    /// Every key of `cloakroom.toml`, as dotted paths with `[]` for arrays of tables:
    /// `server.listen`, `functions[].name`, `identity.oidc[].issuer`, … Tables are
    /// listed too (`vault.openbao`). Sorted.
    pub fn documented_keys() -> Vec<String> {
        let found: RefCell<BTreeSet<String>> = RefCell::new(BTreeSet::new());
        let mut queue: Vec<Vec<String>> = vec![Vec::new()];
        let mut seen: BTreeSet<Vec<String>> = BTreeSet::new();
        while let Some(path) = queue.pop() {
            if !seen.insert(path.clone()) {
                continue;
            }
            let fields: RefCell<Option<Vec<String>>> = RefCell::new(None);
            let probe = Probe { path: &path, depth: 0, fields: &fields };
            let _ = <Config as de::Deserialize>::deserialize(probe);
            if let Some(fields) = fields.into_inner() {
                for f in fields {
                    let mut next = path.clone();
                    let array = f == ARRAY;
                    next.push(f);
                    if !array {
                        found.borrow_mut().insert(render(&next));
                    }
                    queue.push(next);
                }
            }
        }
        found.into_inner().into_iter().collect()
    }
}

/// The path step into an element of an array.
const ARRAY: &str = "[]";

/// `["identity", "oidc", "[]", "issuer"]` -> `identity.oidc[].issuer`.
fn render(path: &[String]) -> String {
    path.join(".").replace(".[]", "[]")
}

#[derive(Debug)]
struct ProbeEnd(String);

impl fmt::Display for ProbeEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ProbeEnd {}

impl de::Error for ProbeEnd {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        ProbeEnd(msg.to_string())
    }
}

/// Walks to `path[depth..]`, recording the struct fields found at its end.
#[derive(Clone, Copy)]
struct Probe<'a> {
    path: &'a [String],
    depth: usize,
    fields: &'a RefCell<Option<Vec<String>>>,
}

impl Probe<'_> {
    fn at_end(&self) -> bool {
        self.depth == self.path.len()
    }

    fn stop<T>(&self) -> Result<T, ProbeEnd> {
        Err(ProbeEnd("probe end".into()))
    }
}

macro_rules! leaf {
    ($($name:ident)*) => {$(
        fn $name<V: Visitor<'de>>(self, _v: V) -> Result<V::Value, ProbeEnd> { self.stop() }
    )*};
}

impl<'de> Deserializer<'de> for Probe<'_> {
    type Error = ProbeEnd;

    leaf!(deserialize_any deserialize_bool deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64
        deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64 deserialize_f32 deserialize_f64
        deserialize_char deserialize_str deserialize_string deserialize_bytes deserialize_byte_buf
        deserialize_unit deserialize_map deserialize_identifier deserialize_ignored_any);

    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, ProbeEnd> {
        v.visit_some(self)
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(self, _: &'static str, _v: V) -> Result<V::Value, ProbeEnd> {
        self.stop()
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _: &'static str, v: V) -> Result<V::Value, ProbeEnd> {
        v.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, v: V) -> Result<V::Value, ProbeEnd> {
        // An array of tables: its element is one step further, named "[]".
        if self.at_end() {
            *self.fields.borrow_mut() = Some(vec![ARRAY.to_owned()]);
            return self.stop();
        }
        match self.path.get(self.depth) {
            Some(step) if step == ARRAY => v.visit_seq(OneElement(Some(Probe { depth: self.depth + 1, ..self }))),
            _ => self.stop(),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _: usize, _v: V) -> Result<V::Value, ProbeEnd> {
        self.stop()
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(self, _: &'static str, _: usize, _v: V) -> Result<V::Value, ProbeEnd> {
        self.stop()
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, ProbeEnd> {
        if self.at_end() {
            *self.fields.borrow_mut() = Some(fields.iter().map(|f| (*f).to_owned()).collect());
            return self.stop();
        }
        v.visit_map(OneKey { probe: self, sent: false })
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        _v: V,
    ) -> Result<V::Value, ProbeEnd> {
        self.stop()
    }
}

/// The one key along the path, then its value.
struct OneKey<'a> {
    probe: Probe<'a>,
    sent: bool,
}

impl<'de> MapAccess<'de> for OneKey<'_> {
    type Error = ProbeEnd;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, ProbeEnd> {
        if self.sent {
            return Ok(None);
        }
        self.sent = true;
        let key = self.probe.path[self.probe.depth].clone();
        seed.deserialize(de::value::StringDeserializer::<ProbeEnd>::new(key)).map(Some)
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, ProbeEnd> {
        seed.deserialize(Probe { depth: self.probe.depth + 1, ..self.probe })
    }
}

struct OneElement<'a>(Option<Probe<'a>>);

impl<'de> SeqAccess<'de> for OneElement<'_> {
    type Error = ProbeEnd;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, ProbeEnd> {
        match self.0.take() {
            Some(p) => seed.deserialize(p).map(Some),
            None => Ok(None),
        }
    }
}
