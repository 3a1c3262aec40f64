//! The YAML text as a tree that remembers where every key and value is written.
//!
//! Aliases are resolved (an alias is a copy of what its anchor names, with the
//! anchor's positions), merge keys (`<<: *base`, `<<: [*a, *b]`) are applied
//! as YAML 1.1 and Ansible apply them, and a key written twice in one mapping
//! is an error naming both places: "the last one wins" silently loses a value.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, Span};

/// Where a node starts: 1-based line and column (in characters), and the
/// byte offset in the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
    pub offset: usize,
}

/// A value as written, with its position.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: Value,
    pub at: Pos,
    /// The byte offset just past the node's text.
    pub end: usize,
    /// A core tag written on a scalar (`!!int "12"`).
    pub tag: Option<CoreTag>,
}

/// The core tags besides `!!str` (which makes a scalar quoted): YAML 1.1
/// readers such as Ansible build the value they name, whatever the style.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CoreTag {
    Int,
    Float,
    Bool,
    Null,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Scalar {
        text: String,
        style: Style,
    },
    Seq(Vec<Node>),
    /// Entries in the order written, merge keys expanded where they stand.
    Map(Vec<(Node, Node)>),
}

/// How a scalar is written. Only plain scalars can be null, booleans or numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    Plain,
    /// `'…'` or `"…"` (or tagged `!!str`): the text starts after the quote.
    Quoted,
    /// `|` or `>`: the text starts on a later line.
    Block,
}

/// A fault found while building the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeError {
    pub message: String,
    pub at: Pos,
    /// Lists and mappings nest past `MAX_DEPTH` here.
    pub too_deep: bool,
}

/// How many nodes aliases may add, so that a few lines of nested aliases
/// ("billion laughs") cannot exhaust memory.
const ALIAS_BUDGET: usize = 100_000;

/// How deep lists and mappings may nest (as serde_yaml allowed), so that a
/// hostile file cannot exhaust the stack.
const MAX_DEPTH: usize = 128;

impl Node {
    /// The scalar's text, if this is a scalar.
    pub fn as_scalar(&self) -> Option<&str> {
        match &self.value {
            Value::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    /// The value under `key`, if this is a mapping that has it.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Value::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.as_scalar() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// The key node of `key`, if this is a mapping that has it.
    pub fn key(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Value::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.as_scalar() == Some(key))
                .map(|(k, _)| k),
            _ => None,
        }
    }

    /// The key of the first entry whose value is the scalar `value`, if this
    /// is a mapping that has one.
    pub fn key_of(&self, value: &str) -> Option<&str> {
        match &self.value {
            Value::Map(entries) => entries
                .iter()
                .find(|(_, v)| v.as_scalar() == Some(value))
                .and_then(|(k, _)| k.as_scalar()),
            _ => None,
        }
    }

    /// The node reached by following `path`: mapping keys, and list indexes
    /// written as numbers.
    pub fn find(&self, path: &[&str]) -> Option<&Node> {
        let mut node = self;
        for part in path {
            node = match &node.value {
                Value::Seq(items) => items.get(part.parse::<usize>().ok()?)?,
                _ => node.get(part)?,
            };
        }
        Some(node)
    }

    /// Whether this is a plain scalar that reads as null (`~`, `null`, nothing).
    pub fn is_null(&self) -> bool {
        matches!(&self.value, Value::Scalar { text, style: Style::Plain }
            if matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL"))
    }

    /// Whether nothing is written here (`key:` and no value), which reads
    /// as an empty list or mapping where one is expected.
    pub fn is_empty(&self) -> bool {
        matches!(&self.value, Value::Scalar { text, style: Style::Plain } if text.is_empty())
    }

    /// The byte offset where the node's content starts (after an opening quote).
    pub fn content_offset(&self) -> usize {
        match &self.value {
            Value::Scalar {
                style: Style::Quoted,
                ..
            } if self.end > self.at.offset + 1 => self.at.offset + 1,
            _ => self.at.offset,
        }
    }

    fn size(&self) -> usize {
        match &self.value {
            Value::Scalar { .. } => 1,
            Value::Seq(items) => 1 + items.iter().map(Node::size).sum::<usize>(),
            Value::Map(entries) => {
                1 + entries
                    .iter()
                    .map(|(k, v)| k.size() + v.size())
                    .sum::<usize>()
            }
        }
    }
}

/// Builds the tree of the one document in `text` (a null at 1:1 when empty).
pub fn build(text: &str) -> Result<Node, TreeError> {
    let mut reader = Reader {
        parser: Parser::new_from_str(text),
        bytes: text
            .char_indices()
            .map(|(i, _)| i)
            .chain([text.len()])
            .collect(),
        anchors: HashMap::new(),
        budget: ALIAS_BUDGET,
    };
    let mut root = None;
    loop {
        let (event, span) = reader.next()?;
        match event {
            Event::StreamEnd => break,
            Event::DocumentStart(_) if root.is_some() => {
                return Err(TreeError {
                    message: "a second YAML document starts here: herd reads one per file"
                        .to_string(),
                    at: reader.pos(&span),
                    too_deep: false,
                })
            }
            Event::DocumentStart(_) => {
                let (event, span) = reader.next()?;
                root = Some(reader.node(event, span, 0)?);
            }
            _ => {}
        }
    }
    Ok(root.unwrap_or(Node {
        value: Value::Scalar {
            text: String::new(),
            style: Style::Plain,
        },
        at: Pos {
            line: 1,
            column: 1,
            offset: 0,
        },
        end: 0,
        tag: None,
    }))
}

struct Reader<'t> {
    parser: Parser<'t, saphyr_parser::StrInput<'t>>,
    /// Byte offset of each character (the parser counts characters).
    bytes: Vec<usize>,
    anchors: HashMap<usize, Node>,
    budget: usize,
}

impl<'t> Reader<'t> {
    fn next(&mut self) -> Result<(Event<'t>, Span), TreeError> {
        match self.parser.next_event() {
            Some(Ok(next)) => Ok(next),
            Some(Err(error)) => {
                let mark = error.marker();
                // The parser's own limit on flow nesting, met before ours.
                let too_deep = error.info().contains("recursion limit");
                Err(TreeError {
                    message: if too_deep {
                        format!("lists and mappings nest deeper than {MAX_DEPTH} levels here")
                    } else {
                        error.info().to_string()
                    },
                    at: Pos {
                        line: mark.line(),
                        column: mark.col() + 1,
                        offset: self.byte(mark.index()),
                    },
                    too_deep,
                })
            }
            None => Err(TreeError {
                message: "unexpected end of the file".to_string(),
                at: Pos {
                    line: 1,
                    column: 1,
                    offset: 0,
                },
                too_deep: false,
            }),
        }
    }

    fn byte(&self, index: usize) -> usize {
        self.bytes[index.min(self.bytes.len() - 1)]
    }

    fn pos(&self, span: &Span) -> Pos {
        Pos {
            line: span.start.line(),
            column: span.start.col() + 1,
            offset: self.byte(span.start.index()),
        }
    }

    fn node(&mut self, event: Event<'t>, span: Span, depth: usize) -> Result<Node, TreeError> {
        let at = self.pos(&span);
        if depth > MAX_DEPTH {
            return Err(TreeError {
                message: format!("lists and mappings nest deeper than {MAX_DEPTH} levels here"),
                at,
                too_deep: true,
            });
        }
        let (node, anchor) = match event {
            Event::Scalar(text, style, anchor, tag) => {
                let style = match style {
                    _ if tag
                        .as_ref()
                        .is_some_and(|t| t.is_yaml_core_schema() && t.suffix == "str") =>
                    {
                        Style::Quoted
                    }
                    ScalarStyle::Plain => Style::Plain,
                    ScalarStyle::SingleQuoted | ScalarStyle::DoubleQuoted => Style::Quoted,
                    ScalarStyle::Literal | ScalarStyle::Folded => Style::Block,
                };
                let tag = tag
                    .as_ref()
                    .filter(|t| t.is_yaml_core_schema())
                    .and_then(|t| match t.suffix.as_str() {
                        "int" => Some(CoreTag::Int),
                        "float" => Some(CoreTag::Float),
                        "bool" => Some(CoreTag::Bool),
                        "null" => Some(CoreTag::Null),
                        _ => None,
                    });
                let value = Value::Scalar {
                    text: text.into_owned(),
                    style,
                };
                let end = self.byte(span.end.index());
                (
                    Node {
                        value,
                        at,
                        end,
                        tag,
                    },
                    anchor,
                )
            }
            Event::SequenceStart(anchor, _) => {
                let mut items = Vec::new();
                let end = loop {
                    let (event, span) = self.next()?;
                    if let Event::SequenceEnd = event {
                        break self.byte(span.end.index());
                    }
                    items.push(self.node(event, span, depth + 1)?);
                };
                let value = Value::Seq(items);
                (
                    Node {
                        value,
                        at,
                        end,
                        tag: None,
                    },
                    anchor,
                )
            }
            Event::MappingStart(anchor, _) => {
                let mut pairs = Vec::new();
                let end = loop {
                    let (event, span) = self.next()?;
                    if let Event::MappingEnd = event {
                        break self.byte(span.end.index());
                    }
                    let key = self.node(event, span, depth + 1)?;
                    let (event, span) = self.next()?;
                    let value = self.node(event, span, depth + 1)?;
                    pairs.push((key, value));
                };
                let value = Value::Map(merge(pairs)?);
                (
                    Node {
                        value,
                        at,
                        end,
                        tag: None,
                    },
                    anchor,
                )
            }
            Event::Alias(id) => {
                let Some(node) = self.anchors.get(&id) else {
                    return Err(TreeError {
                        message: "unknown alias".to_string(),
                        at,
                        too_deep: false,
                    });
                };
                let size = node.size();
                if size > self.budget {
                    return Err(TreeError {
                        message: "aliases here expand to too large a document".to_string(),
                        at,
                        too_deep: false,
                    });
                }
                self.budget -= size;
                return Ok(node.clone());
            }
            _ => {
                return Err(TreeError {
                    message: "unexpected YAML event".to_string(),
                    at,
                    too_deep: false,
                })
            }
        };
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
        }
        Ok(node)
    }
}

fn is_merge_key(key: &Node) -> bool {
    matches!(&key.value, Value::Scalar { text, style: Style::Plain } if text == "<<")
}

/// Refuses a key written twice, and expands merge keys where they stand:
/// keys written in the mapping win over merged ones, and among merged
/// mappings the earlier one wins.
fn merge(pairs: Vec<(Node, Node)>) -> Result<Vec<(Node, Node)>, TreeError> {
    let mut explicit: HashMap<&str, &Node> = HashMap::new();
    let mut merges = 0;
    for (key, _) in &pairs {
        let Some(text) = key.as_scalar() else {
            continue;
        };
        if is_merge_key(key) {
            merges += 1;
        }
        if let Some(first) = explicit.insert(text, key) {
            return Err(TreeError {
                message: format!(
                    "duplicate key `{text}`: it is already written at line {}, column {}",
                    first.at.line, first.at.column
                ),
                at: key.at,
                too_deep: false,
            });
        }
    }
    if merges == 0 {
        return Ok(pairs);
    }
    let written: Vec<String> = pairs
        .iter()
        .filter(|(k, _)| !is_merge_key(k))
        .filter_map(|(k, _)| k.as_scalar().map(str::to_string))
        .collect();
    let mut entries = Vec::with_capacity(pairs.len());
    for (key, value) in pairs {
        if !is_merge_key(&key) {
            entries.push((key, value));
            continue;
        }
        let sources = match value.value {
            Value::Map(_) => vec![value],
            Value::Seq(items) if items.iter().all(|i| matches!(i.value, Value::Map(_))) => items,
            _ => {
                return Err(TreeError {
                    message: "`<<` merges a mapping or a list of mappings, like `<<: *base`"
                        .to_string(),
                    at: key.at,
                    too_deep: false,
                })
            }
        };
        let mut merged: Vec<String> = Vec::new();
        for source in sources {
            let Value::Map(source) = source.value else {
                continue;
            };
            for (k, v) in source {
                let text = k.as_scalar().map(str::to_string);
                if let Some(text) = text {
                    if written.contains(&text) || merged.contains(&text) {
                        continue;
                    }
                    merged.push(text);
                }
                entries.push((k, v));
            }
        }
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(node: &Node) -> Vec<(String, String)> {
        let Value::Map(entries) = &node.value else {
            panic!("not a mapping: {node:?}")
        };
        entries
            .iter()
            .map(|(k, v)| {
                (
                    k.as_scalar().unwrap().to_string(),
                    v.as_scalar().unwrap_or("…").to_string(),
                )
            })
            .collect()
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn every_key_and_value_has_its_position() {
        let text = "a: 1\nweb1: { port: x }\nc:\n  - \"q\"\n";
        let root = build(text).unwrap();
        let port = root.find(&["web1", "port"]).unwrap();
        assert_eq!((port.at.line, port.at.column), (2, 15));
        assert_eq!(&text[port.at.offset..port.end], "x");
        let quoted = root.find(&["c", "0"]).unwrap();
        assert_eq!((quoted.at.line, quoted.at.column), (4, 5));
        assert_eq!(quoted.content_offset(), quoted.at.offset + 1);
        let key = root.key("c").unwrap();
        assert_eq!((key.at.line, key.at.column), (3, 1));
    }

    #[test]
    fn the_same_text_twice_has_two_positions() {
        let root = build("a:\n  x: 1\nb:\n  x: 1\n").unwrap();
        assert_eq!(root.find(&["a", "x"]).unwrap().at.line, 2);
        assert_eq!(root.find(&["b", "x"]).unwrap().at.line, 4);
    }

    #[test]
    fn duplicate_keys_name_both_places() {
        let error = build("vars:\n  a: 1\n  b: 2\n  a: 3\n").unwrap_err();
        assert_eq!(
            error.message,
            "duplicate key `a`: it is already written at line 2, column 3"
        );
        assert_eq!((error.at.line, error.at.column), (4, 3));
        let error = build("x: { a: 1, a: 2 }\n").unwrap_err();
        assert_eq!((error.at.line, error.at.column), (1, 12));
    }

    #[test]
    fn merge_keys_merge_and_written_keys_win() {
        let text = "base: &base\n  user: deploy\n  port: 22\nweb:\n  <<: *base\n  port: 2222\n";
        let root = build(text).unwrap();
        assert_eq!(
            keys(root.get("web").unwrap()),
            pairs(&[("user", "deploy"), ("port", "2222")])
        );
        // A written key wins even when it comes before the merge.
        let root = build("b: &b { x: 1, y: 2 }\nc:\n  y: 3\n  <<: *b\n").unwrap();
        assert_eq!(
            keys(root.get("c").unwrap()),
            pairs(&[("y", "3"), ("x", "1")])
        );
    }

    #[test]
    fn merging_a_list_the_earlier_mapping_wins() {
        let text = "a: &a { x: 1 }\nb: &b { x: 2, y: 2 }\nc:\n  <<: [*a, *b]\n  z: 3\n";
        let root = build(text).unwrap();
        assert_eq!(
            keys(root.get("c").unwrap()),
            pairs(&[("x", "1"), ("y", "2"), ("z", "3")])
        );
    }

    #[test]
    fn merged_values_keep_the_anchor_position() {
        let root = build("base: &base\n  port: x\nweb:\n  <<: *base\n").unwrap();
        let port = root.find(&["web", "port"]).unwrap();
        assert_eq!((port.at.line, port.at.column), (2, 9));
    }

    #[test]
    fn merging_a_scalar_is_refused() {
        let error = build("a: &a 1\nb:\n  <<: *a\n").unwrap_err();
        assert!(error.message.starts_with("`<<` merges a mapping"));
        assert_eq!(error.at.line, 3);
    }

    #[test]
    fn a_quoted_merge_key_is_an_ordinary_key() {
        let root = build("a:\n  '<<': 1\n").unwrap();
        assert_eq!(keys(root.get("a").unwrap()), pairs(&[("<<", "1")]));
    }

    #[test]
    fn alias_bombs_are_refused() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..8 {
            let p = i - 1;
            text.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let error = build(&text).unwrap_err();
        assert!(error.message.contains("too large"), "{}", error.message);
    }

    #[test]
    fn deep_nesting_is_refused() {
        let flow = "[".repeat(200) + &"]".repeat(200);
        let error = build(&flow).unwrap_err();
        assert_eq!(
            (error.message.as_str(), error.at.column),
            ("lists and mappings nest deeper than 128 levels here", 130)
        );
        let block: String = (0..2000)
            .map(|i| format!("{}b:\n", " ".repeat(i)))
            .collect();
        assert!(build(&block)
            .unwrap_err()
            .message
            .contains("deeper than 128"));
    }

    #[test]
    fn one_document_per_file() {
        let error = build("a: 1\n---\nb: 2\n").unwrap_err();
        assert_eq!(error.at.line, 2);
        assert!(build("").unwrap().is_null());
    }
}
