//! The HTML fragment serialization algorithm (`innerHTML`, `outerHTML`).

use crate::{Dom, NodeData, NodeId};

/// Elements serialized without an end tag.
const VOID: &[&str] = &[
    "area", "base", "basefont", "bgsound", "br", "col", "embed", "frame", "hr", "img", "input",
    "keygen", "link", "meta", "param", "source", "track", "wbr",
];

/// Elements whose text children are written as they are.
const RAW_TEXT: &[&str] = &[
    "style",
    "script",
    "xmp",
    "iframe",
    "noembed",
    "noframes",
    "plaintext",
];

impl Dom {
    /// The HTML of `id`'s children (a template's contents for `<template>`).
    pub fn inner_html(&self, id: NodeId) -> String {
        let mut out = String::new();
        let id = self.template_contents(id).unwrap_or(id);
        for c in self.children(id) {
            self.write_node(c, &mut out);
        }
        out
    }

    /// The HTML of `id` itself and its subtree.
    pub fn outer_html(&self, id: NodeId) -> String {
        let mut out = String::new();
        self.write_node(id, &mut out);
        out
    }

    fn write_node(&self, id: NodeId, out: &mut String) {
        match &self.node(id).data {
            NodeData::Document | NodeData::Fragment => {
                for c in self.children(id) {
                    self.write_node(c, out);
                }
            }
            NodeData::Doctype { name } => {
                out.push_str("<!DOCTYPE ");
                out.push_str(name);
                out.push('>');
            }
            NodeData::Text(t) => {
                let raw = self
                    .parent(id)
                    .and_then(|p| self.element(p))
                    .is_some_and(|e| RAW_TEXT.contains(&&**e.local_name()));
                if raw {
                    out.push_str(t);
                } else {
                    escape(t, false, out);
                }
            }
            NodeData::Comment(t) => {
                out.push_str("<!--");
                out.push_str(t);
                out.push_str("-->");
            }
            NodeData::ProcessingInstruction { target, data } => {
                out.push_str("<?");
                out.push_str(target);
                out.push(' ');
                out.push_str(data);
                out.push('>');
            }
            NodeData::Element(e) => {
                let name = &**e.local_name();
                out.push('<');
                out.push_str(name);
                for a in e.attrs.iter() {
                    out.push(' ');
                    if let Some(p) = a.prefix() {
                        out.push_str(p);
                        out.push(':');
                    }
                    out.push_str(a.local_name());
                    out.push_str("=\"");
                    escape(&a.value, true, out);
                    out.push('"');
                }
                out.push('>');
                if VOID.contains(&name) {
                    return;
                }
                out.push_str(&self.inner_html(id));
                out.push_str("</");
                out.push_str(name);
                out.push('>');
            }
        }
    }
}

fn escape(text: &str, attribute: bool, out: &mut String) {
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '\u{a0}' => out.push_str("&nbsp;"),
            '"' if attribute => out.push_str("&quot;"),
            '<' if !attribute => out.push_str("&lt;"),
            '>' if !attribute => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
}
