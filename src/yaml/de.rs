//! serde over the position tree: herd's types deserialize from a [`Node`],
//! and an error comes back with the position and path of the node it is
//! about (`steps[0].timeout: invalid duration …`).
//!
//! Plain scalars are read as YAML 1.2's core schema reads them (as serde_yaml
//! did): `~`/`null`/nothing, `true`/`false`, integers (also `0x`, `0o`,
//! `0b`), floats; anything else, and anything quoted, is a string. A field
//! that wants a string takes any scalar's text as written. Inventories are
//! read with YAML 1.1's rules instead ([`Schema::Yaml11`]), as Ansible reads
//! them; keys keep their text as written under both.

use std::fmt;

use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use super::tree::{CoreTag, Node, Pos, Style, Value};
use super::yaml11::{self, Scalar, Unreadable};

/// A deserialization error and, once known, where it is and the path to it.
#[derive(Debug)]
pub struct Error {
    pub message: String,
    pub at: Option<(Pos, String)>,
}

impl de::Error for Error {
    fn custom<T: fmt::Display>(message: T) -> Self {
        Error {
            message: message.to_string(),
            at: None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

/// A value and where it is written, for checks made after deserializing.
#[derive(Debug, Clone, PartialEq)]
pub struct Spanned<T> {
    pub value: T,
    pub at: Pos,
    /// Byte offset of the value's text (after an opening quote).
    pub content: usize,
}

const SPANNED: &str = "$herd::yaml::Spanned";
const SPANNED_FIELDS: &[&str] = &["$line", "$column", "$offset", "$content", "$value"];

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Spanned<T> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SpannedVisitor<T>(std::marker::PhantomData<T>);

        impl<'de, T: Deserialize<'de>> Visitor<'de> for SpannedVisitor<T> {
            type Value = Spanned<T>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a YAML value")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Spanned<T>, A::Error> {
                let mut numbers = [0usize; 4];
                for number in &mut numbers {
                    map.next_key::<de::IgnoredAny>()?;
                    *number = map.next_value()?;
                }
                map.next_key::<de::IgnoredAny>()?;
                let value = map.next_value()?;
                let [line, column, offset, content] = numbers;
                Ok(Spanned {
                    value,
                    at: Pos {
                        line,
                        column,
                        offset,
                    },
                    content,
                })
            }
        }

        deserializer.deserialize_struct(
            SPANNED,
            SPANNED_FIELDS,
            SpannedVisitor(std::marker::PhantomData),
        )
    }
}

/// Deserializes `node`, found at `path` (`.` for the document itself).
pub struct NodeDe<'a> {
    pub node: &'a Node,
    pub path: String,
    pub schema: Schema,
}

/// How plain scalars are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schema {
    /// YAML 1.2's core schema, for herd's own files.
    Core,
    /// YAML 1.1, as Ansible reads inventories (see [`super::yaml11`]).
    Yaml11,
}

/// What a plain scalar means.
enum Plain {
    Null,
    Bool(bool),
    Unsigned(u64),
    Signed(i64),
    Float(f64),
    Text,
}

fn resolve(text: &str) -> Plain {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Plain::Null,
        "true" | "True" | "TRUE" => return Plain::Bool(true),
        "false" | "False" | "FALSE" => return Plain::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Plain::Float(f64::INFINITY)
        }
        "-.inf" | "-.Inf" | "-.INF" => return Plain::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Plain::Float(f64::NAN),
        _ => {}
    }
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    if digits.starts_with(['+', '-']) {
        return Plain::Text;
    }
    // Leading zeros followed by digits are a string in YAML 1.2 (`0644`).
    if digits.len() > 1 && digits.starts_with('0') && digits.bytes().all(|b| b.is_ascii_digit()) {
        return Plain::Text;
    }
    let (radix, body) = match digits.get(..2) {
        Some("0x") => (16, &digits[2..]),
        Some("0o") => (8, &digits[2..]),
        Some("0b") => (2, &digits[2..]),
        _ => (10, digits),
    };
    if !body.is_empty() && !body.starts_with(['+', '-']) {
        if let Ok(magnitude) = u64::from_str_radix(body, radix) {
            if !negative {
                return Plain::Unsigned(magnitude);
            }
            if let Ok(value) = i64::try_from(-i128::from(magnitude)) {
                return Plain::Signed(value);
            }
        }
    }
    let looks_numeric = digits.starts_with(|c: char| c.is_ascii_digit() || c == '.');
    match text.parse::<f64>() {
        Ok(float) if float.is_finite() && looks_numeric => Plain::Float(float),
        _ => Plain::Text,
    }
}

/// Gives `visitor` a scalar `text` as YAML 1.1 read it.
fn visit_yaml11<'a, V: Visitor<'a>>(
    visitor: V,
    text: &'a str,
    read: Result<Scalar, Unreadable>,
) -> Result<V::Value, Error> {
    match read {
        Ok(Scalar::Null) => visitor.visit_unit(),
        Ok(Scalar::Bool(b)) => visitor.visit_bool(b),
        Ok(Scalar::Unsigned(n)) => visitor.visit_u64(n),
        Ok(Scalar::Signed(n)) => visitor.visit_i64(n),
        Ok(Scalar::Float(f)) => visitor.visit_f64(f),
        Ok(Scalar::Converted(s)) => visitor.visit_string(s),
        Ok(Scalar::Text) => visitor.visit_borrowed_str(text),
        Err(Unreadable(message)) => Err(de::Error::custom(message)),
    }
}

impl<'a> NodeDe<'a> {
    fn child(&self, node: &'a Node, part: &str) -> NodeDe<'a> {
        let path = match self.path.as_str() {
            "." => part.to_string(),
            parent => format!("{parent}.{part}"),
        };
        NodeDe {
            node,
            path,
            schema: self.schema,
        }
    }

    /// An error that does not know its place yet gets this node's: the innermost node that failed.
    fn located<T>(node: &Node, path: &str, result: Result<T, Error>) -> Result<T, Error> {
        result.map_err(|mut error| {
            error.at.get_or_insert_with(|| (node.at, path.to_string()));
            error
        })
    }

    fn any<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        match &self.node.value {
            Value::Scalar { text, .. }
                if self.schema == Schema::Yaml11 && self.node.tag.is_some() =>
            {
                let tag = self.node.tag.unwrap_or(CoreTag::Null);
                visit_yaml11(visitor, text, yaml11::construct(tag, text))
            }
            Value::Scalar {
                text,
                style: Style::Plain,
            } if self.schema == Schema::Yaml11 => {
                visit_yaml11(visitor, text, yaml11::resolve(text))
            }
            Value::Scalar {
                text,
                style: Style::Plain,
            } => match resolve(text) {
                Plain::Null => visitor.visit_unit(),
                Plain::Bool(b) => visitor.visit_bool(b),
                Plain::Unsigned(n) => visitor.visit_u64(n),
                Plain::Signed(n) => visitor.visit_i64(n),
                Plain::Float(f) => visitor.visit_f64(f),
                Plain::Text => visitor.visit_borrowed_str(text),
            },
            Value::Scalar { text, .. } => visitor.visit_borrowed_str(text),
            Value::Seq(items) => visitor.visit_seq(SeqDe {
                items: items.iter().enumerate(),
                path: self.path.clone(),
                schema: self.schema,
            }),
            Value::Map(entries) => visitor.visit_map(MapDe {
                parent: self,
                entries: entries.iter(),
                value: None,
            }),
        }
    }
}

macro_rules! forward_located {
    ($($method:ident)*) => {
        $(
            fn $method<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
                let (node, path) = (self.node, self.path.clone());
                Self::located(node, &path, self.any(visitor))
            }
        )*
    };
}

impl<'a> de::Deserializer<'a> for NodeDe<'a> {
    type Error = Error;

    forward_located! {
        deserialize_any deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64
        deserialize_i128 deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64
        deserialize_u128 deserialize_f32 deserialize_f64 deserialize_char deserialize_bytes
        deserialize_byte_buf deserialize_unit deserialize_bool
    }

    fn deserialize_seq<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        let (node, path) = (self.node, self.path.clone());
        let result = if node.is_empty() {
            visitor.visit_seq(SeqDe {
                items: [].iter().enumerate(),
                path: path.clone(),
                schema: self.schema,
            })
        } else {
            self.any(visitor)
        };
        Self::located(node, &path, result)
    }

    fn deserialize_map<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        let (node, path) = (self.node, self.path.clone());
        let result = if node.is_empty() {
            visitor.visit_map(MapDe {
                parent: self,
                entries: [].iter(),
                value: None,
            })
        } else {
            self.any(visitor)
        };
        Self::located(node, &path, result)
    }

    fn deserialize_str<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        let (node, path) = (self.node, self.path.clone());
        let result = match &node.value {
            Value::Scalar { text, .. } => visitor.visit_borrowed_str(text),
            _ => self.any(visitor),
        };
        Self::located(node, &path, result)
    }

    fn deserialize_string<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_identifier<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_option<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        let (node, path) = (self.node, self.path.clone());
        let result = if node.is_null() {
            visitor.visit_none()
        } else {
            visitor.visit_some(self)
        };
        Self::located(node, &path, result)
    }

    fn deserialize_unit_struct<V: Visitor<'a>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'a>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_tuple<V: Visitor<'a>>(self, _len: usize, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'a>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_struct<V: Visitor<'a>>(
        self,
        name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        if name == SPANNED {
            let node = self.node;
            let numbers = [
                node.at.line,
                node.at.column,
                node.at.offset,
                node.content_offset(),
            ];
            return visitor.visit_map(SpannedDe {
                inner: Some(self),
                numbers,
                next: 0,
            });
        }
        self.deserialize_map(visitor)
    }

    fn deserialize_enum<V: Visitor<'a>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let (node, path) = (self.node, self.path.clone());
        let result = match &node.value {
            Value::Scalar { text, .. } => {
                visitor.visit_enum(IntoDeserializer::<Error>::into_deserializer(text.as_str()))
            }
            _ => Err(de::Error::custom("expected a name")),
        };
        Self::located(node, &path, result)
    }

    fn deserialize_ignored_any<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }
}

struct SeqDe<'a> {
    items: std::iter::Enumerate<std::slice::Iter<'a, Node>>,
    path: String,
    schema: Schema,
}

impl<'a> SeqAccess<'a> for SeqDe<'a> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'a>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        let Some((index, node)) = self.items.next() else {
            return Ok(None);
        };
        let path = match self.path.as_str() {
            "." => format!("[{index}]"),
            parent => format!("{parent}[{index}]"),
        };
        let schema = self.schema;
        seed.deserialize(NodeDe { node, path, schema }).map(Some)
    }
}

struct MapDe<'a> {
    parent: NodeDe<'a>,
    entries: std::slice::Iter<'a, (Node, Node)>,
    value: Option<&'a (Node, Node)>,
}

impl<'a> MapAccess<'a> for MapDe<'a> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'a>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        let Some(entry) = self.entries.next() else {
            return Ok(None);
        };
        self.value = Some(entry);
        // A fault in a key (an unknown key) belongs to the mapping's path.
        let key = NodeDe {
            node: &entry.0,
            path: self.parent.path.clone(),
            schema: self.parent.schema,
        };
        seed.deserialize(key).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'a>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let Some((key, value)) = self.value.take() else {
            return Err(de::Error::custom("a value without its key"));
        };
        let name = key.as_scalar().unwrap_or("?");
        seed.deserialize(self.parent.child(value, name))
    }
}

/// Hands a [`Spanned`] its position, then the value.
struct SpannedDe<'a> {
    inner: Option<NodeDe<'a>>,
    numbers: [usize; 4],
    next: usize,
}

impl<'a> MapAccess<'a> for SpannedDe<'a> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'a>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        match SPANNED_FIELDS.get(self.next) {
            Some(field) => seed
                .deserialize(IntoDeserializer::<Error>::into_deserializer(*field))
                .map(Some),
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'a>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let index = self.next;
        self.next += 1;
        match self.numbers.get(index) {
            Some(&number) => {
                seed.deserialize(IntoDeserializer::<Error>::into_deserializer(number as u64))
            }
            None => match self.inner.take() {
                Some(inner) => seed.deserialize(inner),
                None => Err(de::Error::custom("a position read twice")),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tree::build;
    use super::*;

    fn value(text: &str) -> serde_json::Value {
        let node = build(text).unwrap();
        serde_json::Value::deserialize(NodeDe {
            node: &node,
            path: ".".into(),
            schema: Schema::Core,
        })
        .unwrap()
    }

    #[test]
    fn plain_scalars_resolve_as_the_core_schema() {
        assert_eq!(
            value("[~, null, true, False, 12, -3, 0x1f, 0o17, 1.5, 0644, yes, '12', -0, 1e3, .5, inf]"),
            serde_json::json!([
                null, null, true, false, 12, -3, 31, 15, 1.5, "0644", "yes", "12", 0, 1000.0, 0.5,
                "inf"
            ])
        );
    }

    #[test]
    fn nothing_written_is_an_empty_list_or_mapping() {
        #[derive(Deserialize)]
        struct Doc {
            list: Vec<u32>,
            map: indexmap::IndexMap<String, u32>,
            quoted: Option<String>,
        }
        let node = build("list:\nmap:\nquoted: ''\n").unwrap();
        let doc = Doc::deserialize(NodeDe {
            node: &node,
            path: ".".into(),
            schema: Schema::Core,
        })
        .unwrap();
        assert!(doc.list.is_empty() && doc.map.is_empty());
        assert_eq!(doc.quoted.as_deref(), Some(""));
    }

    #[test]
    fn spanned_values_know_where_they_are() {
        let node = build("a: 1\nb: 'x'\n").unwrap();
        let map: indexmap::IndexMap<String, Spanned<String>> = Deserialize::deserialize(NodeDe {
            node: &node,
            path: ".".into(),
            schema: Schema::Core,
        })
        .unwrap();
        let b = &map["b"];
        assert_eq!(b.value, "x");
        assert_eq!(
            (b.at.line, b.at.column, b.at.offset, b.content),
            (2, 4, 8, 9)
        );
    }
}
