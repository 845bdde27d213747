//! A small YAML tree that remembers the line of every node, built from `yaml-rust2`'s event
//! parser, so that every rule load error can name `file:line`.
//!
//! Only what Sigma needs: maps with scalar keys, sequences, typed scalars. Anchors are
//! ignored and aliases rejected (a rule pack has no use for them and they make line numbers
//! ambiguous). Nesting is bounded so a hostile file cannot overflow the stack.

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// Deepest nesting accepted (Sigma rules need about 5).
const MAX_DEPTH: usize = 64;

/// A scalar, typed with YAML 1.2 core-schema rules for plain scalars; quoted ones stay strings.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Scalar {
    Null,
    Bool(bool),
    /// A number, kept as written (`22`, `1.5`) so it compares as text against event values.
    Number(String),
    Str(String),
}

impl Scalar {
    /// The scalar as text (`null` has none).
    pub(crate) fn as_text(&self) -> Option<&str> {
        match self {
            Scalar::Null => None,
            Scalar::Bool(true) => Some("true"),
            Scalar::Bool(false) => Some("false"),
            Scalar::Number(s) | Scalar::Str(s) => Some(s),
        }
    }
}

/// One node with the (1-based) line it starts on.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    pub line: usize,
    pub kind: Kind,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Kind {
    Scalar(Scalar),
    Seq(Vec<Node>),
    /// Entries in file order; keys are scalars rendered as text (with their line).
    Map(Vec<(String, usize, Node)>),
}

impl Node {
    /// The value under `key` when this is a map.
    pub(crate) fn get(&self, key: &str) -> Option<&Node> {
        match &self.kind {
            Kind::Map(entries) => entries.iter().find(|(k, _, _)| k == key).map(|(_, _, v)| v),
            _ => None,
        }
    }

    /// The scalar text (strings, numbers, booleans) of this node.
    pub(crate) fn as_text(&self) -> Option<&str> {
        match &self.kind {
            Kind::Scalar(s) => s.as_text(),
            _ => None,
        }
    }

    /// A short name of the node's shape, for error messages.
    pub(crate) fn shape(&self) -> &'static str {
        match &self.kind {
            Kind::Scalar(Scalar::Null) => "null",
            Kind::Scalar(_) => "a scalar",
            Kind::Seq(_) => "a list",
            Kind::Map(_) => "a map",
        }
    }
}

/// A YAML syntax or shape error with its line.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct YamlError {
    pub line: Option<usize>,
    pub message: String,
}

enum Open {
    Seq(usize, Vec<Node>),
    /// Map line, finished entries, and a pending key waiting for its value.
    Map(usize, Vec<(String, usize, Node)>, Option<(String, usize)>),
}

#[derive(Default)]
struct Builder {
    stack: Vec<Open>,
    docs: Vec<Node>,
    error: Option<YamlError>,
}

impl Builder {
    fn fail(&mut self, line: usize, message: String) {
        if self.error.is_none() {
            self.error = Some(YamlError {
                line: Some(line),
                message,
            });
        }
    }

    fn push_node(&mut self, node: Node) {
        match self.stack.last_mut() {
            None => self.docs.push(node),
            Some(Open::Seq(_, items)) => items.push(node),
            Some(Open::Map(_, entries, pending)) => match pending.take() {
                Some((key, key_line)) => entries.push((key, key_line, node)),
                None => {
                    let line = node.line;
                    let key = match &node.kind {
                        Kind::Scalar(s) => s.as_text().unwrap_or("null").to_owned(),
                        _ => {
                            self.fail(
                                line,
                                format!("map keys must be scalars, found {}", node.shape()),
                            );
                            return;
                        }
                    };
                    if entries.iter().any(|(k, _, _)| *k == key) {
                        self.fail(line, format!("duplicate key `{key}`"));
                        return;
                    }
                    *pending = Some((key, line));
                }
            },
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        if self.error.is_some() {
            return;
        }
        let line = mark.line();
        match ev {
            Event::Scalar(value, style, _, _) => {
                let scalar = if style == TScalarStyle::Plain {
                    plain(value)
                } else {
                    Scalar::Str(value)
                };
                self.push_node(Node {
                    line,
                    kind: Kind::Scalar(scalar),
                });
            }
            Event::SequenceStart(..) | Event::MappingStart(..) => {
                if self.stack.len() >= MAX_DEPTH {
                    self.fail(line, format!("nesting deeper than {MAX_DEPTH} levels"));
                    return;
                }
                let open = if matches!(ev, Event::SequenceStart(..)) {
                    Open::Seq(line, Vec::new())
                } else {
                    Open::Map(line, Vec::new(), None)
                };
                self.stack.push(open);
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let node = match self.stack.pop() {
                    Some(Open::Seq(line, items)) => Node {
                        line,
                        kind: Kind::Seq(items),
                    },
                    Some(Open::Map(line, entries, _)) => Node {
                        line,
                        kind: Kind::Map(entries),
                    },
                    None => return,
                };
                self.push_node(node);
            }
            Event::Alias(_) => self.fail(
                line,
                "YAML aliases (`*name`) are not supported in rules".into(),
            ),
            Event::Nothing
            | Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart
            | Event::DocumentEnd => {}
        }
    }
}

/// YAML 1.2 core schema for plain scalars.
fn plain(value: String) -> Scalar {
    match value.as_str() {
        "" | "~" | "null" | "Null" | "NULL" => Scalar::Null,
        "true" | "True" | "TRUE" => Scalar::Bool(true),
        "false" | "False" | "FALSE" => Scalar::Bool(false),
        s if is_number(s) => Scalar::Number(value),
        _ => Scalar::Str(value),
    }
}

fn is_number(s: &str) -> bool {
    let digits = s.strip_prefix(['-', '+']).unwrap_or(s);
    !digits.is_empty()
        && digits.bytes().any(|b| b.is_ascii_digit())
        && digits.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && digits.bytes().filter(|b| *b == b'.').count() <= 1
}

/// Parse every document of `text`.
pub(crate) fn parse_documents(text: &str) -> Result<Vec<Node>, YamlError> {
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(text);
    if let Err(e) = parser.load(&mut builder, true) {
        return Err(YamlError {
            line: Some(e.marker().line()),
            message: format!("invalid YAML: {}", e.info()),
        });
    }
    match builder.error {
        Some(e) => Err(e),
        None => Ok(builder.docs),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_know_their_lines_and_types() {
        let docs = parse_documents(
            "title: x\ndetection:\n  sel:\n    a: 22\n    b: '22'\n    c: null\n    d: true\n",
        )
        .unwrap();
        assert_eq!(docs.len(), 1);
        let sel = docs[0].get("detection").unwrap().get("sel").unwrap();
        assert_eq!(sel.line, 4);
        assert_eq!(
            sel.get("a").unwrap().kind,
            Kind::Scalar(Scalar::Number("22".into()))
        );
        assert_eq!(
            sel.get("b").unwrap().kind,
            Kind::Scalar(Scalar::Str("22".into()))
        );
        assert_eq!(sel.get("c").unwrap().kind, Kind::Scalar(Scalar::Null));
        assert_eq!(sel.get("d").unwrap().kind, Kind::Scalar(Scalar::Bool(true)));
        assert_eq!(sel.get("d").unwrap().line, 7);
    }

    #[test]
    fn errors_carry_lines() {
        let e = parse_documents("a: 1\nb: [1, 2\n").unwrap_err();
        assert!(e.line.is_some());
        let e = parse_documents("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!(e.line, Some(3));
        assert!(e.message.contains("duplicate key"));
    }

    #[test]
    fn multiple_documents_are_split() {
        let docs = parse_documents("a: 1\n---\nb: 2\n").unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1].line, 3);
    }

    #[test]
    fn deep_nesting_is_rejected() {
        let text = "[".repeat(100) + &"]".repeat(100);
        assert!(parse_documents(&text)
            .unwrap_err()
            .message
            .contains("nesting"));
    }
}
