//! The inventory file as written, before any meaning is given to it.
//!
//! Ansible walks a group's keys in the order they are written, so a group
//! listing `children:` before `hosts:` declares its children's hosts first.
//! serde's derived structs forget that order, so groups and mappings here
//! keep their entries as written. Names and values keep their positions, so
//! that a mistake found later (a bad range, a cycle, a bad `ansible_port`)
//! points where it is written. A key written twice in one mapping never gets
//! here: the YAML layer refuses it.

use std::fmt;
use std::marker::PhantomData;

use serde::de::value::MapAccessDeserializer;
use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};

use crate::source::SourceError;
use crate::yaml::{resolve_yaml11, CoreTag, Document, Node, Scalar, Spanned, Style, Value};

/// The whole file: top-level groups (an empty file has none).
pub type RawInventory = Option<Entries<Option<RawGroup>>>;

/// A YAML mapping with string keys, in the order written.
pub struct Entries<T>(pub Vec<(Spanned<String>, T)>);

/// Variables, each value with its position.
pub type RawVars = Entries<Spanned<serde_json::Value>>;

/// One group's body: its sections in the order written.
#[derive(Default)]
pub struct RawGroup {
    pub sections: Vec<Section>,
}

pub enum Section {
    /// Host name (possibly a range) -> its vars.
    Hosts(Entries<Option<RawVars>>),
    Vars(RawVars),
    Children(Entries<Option<RawGroup>>),
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Entries<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntriesVisitor<T>(PhantomData<T>);

        impl<'de, T: Deserialize<'de>> Visitor<'de> for EntriesVisitor<T> {
            type Value = Entries<T>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry::<Spanned<String>, T>()? {
                    entries.push(entry);
                }
                Ok(Entries(entries))
            }
        }

        deserializer.deserialize_map(EntriesVisitor(PhantomData))
    }
}

/// A section as written: a mapping, or the shorthand of one name
/// (`hosts: web1` for `hosts: { web1: }`), which Ansible accepts for
/// `hosts`, `children` and `vars` alike.
enum MapOrName<T> {
    Map(Entries<T>),
    Name(String),
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for MapOrName<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MapOrNameVisitor<T>(PhantomData<T>);

        impl<'de, T: Deserialize<'de>> Visitor<'de> for MapOrNameVisitor<T> {
            type Value = MapOrName<T>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping, or one name")
            }

            fn visit_str<E: de::Error>(self, name: &str) -> Result<Self::Value, E> {
                Ok(MapOrName::Name(name.to_string()))
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                Entries::deserialize(MapAccessDeserializer::new(map)).map(MapOrName::Map)
            }
        }

        deserializer.deserialize_any(MapOrNameVisitor(PhantomData))
    }
}

/// The entries of a section; the shorthand name gets `empty` as its value.
fn entries<T>(section: Spanned<MapOrName<T>>, empty: impl FnOnce(&Spanned<()>) -> T) -> Entries<T> {
    match section.value {
        MapOrName::Map(entries) => entries,
        MapOrName::Name(name) => {
            let at = Spanned {
                value: (),
                at: section.at,
                content: section.content,
            };
            let value = empty(&at);
            Entries(vec![(
                Spanned {
                    value: name,
                    at: at.at,
                    content: at.content,
                },
                value,
            )])
        }
    }
}

/// The keys a group may have; anything else is a mistake worth reporting
/// (`host:` for `hosts:` would otherwise silently drop hosts).
#[derive(serde::Deserialize, Clone, Copy)]
#[serde(field_identifier, rename_all = "lowercase")]
enum Field {
    Hosts,
    Vars,
    Children,
}

const FIELDS: &[&str] = &["hosts", "vars", "children"];

impl<'de> Deserialize<'de> for RawGroup {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct GroupVisitor;

        impl<'de> Visitor<'de> for GroupVisitor {
            type Value = RawGroup;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a group: a mapping with `hosts`, `vars` or `children`")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut sections = Vec::new();
                let mut seen = [false; 3];
                while let Some(field) = map.next_key::<Field>()? {
                    let slot = field as usize;
                    if seen[slot] {
                        return Err(de::Error::duplicate_field(FIELDS[slot]));
                    }
                    seen[slot] = true;
                    let section = match field {
                        Field::Hosts => map
                            .next_value::<Option<_>>()?
                            .map(|s| Section::Hosts(entries(s, |_| None))),
                        Field::Vars => map.next_value::<Option<_>>()?.map(|s| {
                            Section::Vars(entries(s, |at| Spanned {
                                value: serde_json::Value::Null,
                                at: at.at,
                                content: at.content,
                            }))
                        }),
                        Field::Children => map
                            .next_value::<Option<_>>()?
                            .map(|s| Section::Children(entries(s, |_| None))),
                    };
                    sections.extend(section);
                }
                Ok(RawGroup { sections })
            }
        }

        deserializer.deserialize_struct("RawGroup", FIELDS, GroupVisitor)
    }
}

/// Refuses group and host names that YAML 1.1 reads as something other than
/// text (`yes:`, `1:30:`, `2024-01-01:`, `~:`): Ansible refuses them too,
/// and quoting the name says what is meant.
pub fn check_names(document: &Document) -> Result<(), SourceError> {
    if let Value::Map(groups) = &document.root.value {
        for (name, body) in groups {
            check_group(document, name, body)?;
        }
    }
    Ok(())
}

fn check_group(document: &Document, name: &Node, body: &Node) -> Result<(), SourceError> {
    check_name(document, name, "group")?;
    let sections = [("hosts", "host"), ("children", "group")];
    for (section, what) in sections {
        match body.get(section).map(|node| &node.value) {
            Some(Value::Map(entries)) => {
                for (key, value) in entries {
                    if what == "group" {
                        check_group(document, key, value)?;
                    } else {
                        check_name(document, key, what)?;
                    }
                }
            }
            Some(Value::Scalar { .. }) => {
                let node = body.get(section).filter(|node| !node.is_null());
                if let Some(node) = node {
                    check_name(document, node, what)?;
                }
            }
            _ => {}
        }
    }
    Ok(())
}

fn check_name(document: &Document, name: &Node, what: &str) -> Result<(), SourceError> {
    let (text, plain) = match &name.value {
        Value::Scalar { text, style } => (text, *style == Style::Plain),
        _ => return Ok(()),
    };
    // A name starts herd's log lines and goes to hooks space-separated
    // (`$HERD_BATCH_HOSTS`): a space would split it, a `*` or `?` glob, a
    // control character end or rewrite the line.
    if let Some(bad) = text.chars().find(|&c| {
        c.is_whitespace() || c.is_control() || crate::shell::reorders(c) || matches!(c, '*' | '?')
    }) {
        let said = match bad {
            '*' | '?' => format!("a `{bad}`"),
            c if c.is_control() || crate::shell::reorders(c) => {
                format!("a control character ({})", c.escape_default())
            }
            _ => "whitespace".to_string(),
        };
        let shown: String = text
            .chars()
            .map(|c| match c.is_control() || crate::shell::reorders(c) {
                true => c.escape_default().to_string(),
                false => c.to_string(),
            })
            .collect();
        return Err(document.error(
            name.at,
            format!(
                "{what} name `{shown}` holds {said}: herd prints names at the start of its lines and passes them to hooks separated by spaces; name it with letters, digits and `-._:[]@`"
            ),
        ));
    }
    let read_as = match (name.tag, plain) {
        (Some(CoreTag::Null), _) => Ok(Scalar::Null),
        (Some(CoreTag::Bool), _) => Ok(Scalar::Bool(true)),
        (Some(CoreTag::Int | CoreTag::Float), _) => Ok(Scalar::Unsigned(0)),
        (None, true) => resolve_yaml11(text),
        (None, false) => return Ok(()),
    };
    let read_as = match read_as {
        Ok(Scalar::Text) => return Ok(()),
        Ok(Scalar::Null) => "nothing (null)",
        Ok(Scalar::Bool(_)) => "a boolean",
        Ok(Scalar::Unsigned(_) | Scalar::Signed(_) | Scalar::Float(_)) => "a number",
        Ok(Scalar::Converted(_)) if text.contains('-') && !text.starts_with('-') => "a date",
        Ok(Scalar::Converted(_)) => "a number",
        Err(error) => return Err(document.error(name.at, error.0)),
    };
    Err(document.error(
        name.at,
        format!(
            "{what} name `{text}` reads as {read_as} under YAML 1.1, as Ansible reads inventories; quote it"
        ),
    ))
}
