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

use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};

use crate::yaml::Spanned;

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
                        Field::Hosts => map.next_value::<Option<_>>()?.map(Section::Hosts),
                        Field::Vars => map.next_value::<Option<_>>()?.map(Section::Vars),
                        Field::Children => map.next_value::<Option<_>>()?.map(Section::Children),
                    };
                    sections.extend(section);
                }
                Ok(RawGroup { sections })
            }
        }

        deserializer.deserialize_struct("RawGroup", FIELDS, GroupVisitor)
    }
}
