//! Camut's HTML document model for browser emulation.
//!
//! A document is an arena of nodes addressed by [`NodeId`] (a `u32`): compact (no
//! reference counts, no per-node allocation besides attributes), and cheap to hand to
//! a script engine as a number. Pages are parsed by html5ever as browsers parse them,
//! queried with the `selectors` crate (the CSS engine of Servo) and serialized back to
//! HTML by the fragment serialization algorithm.
//!
//! This crate knows nothing of JavaScript: the engine wraps it for its virtual users.
//! Nodes removed from the tree stay in the arena until the document is dropped.

#![warn(missing_docs)]

mod name;
mod parse;
mod select;
mod serialize;

pub use html5ever::{LocalName, Namespace, QualName};
pub use name::{Attr, Element};
pub use select::{Selector, SelectorError};

use std::collections::HashMap;

use html5ever::tendril::StrTendril;
use html5ever::{local_name, ns};

/// A node's index in its document's arena.
pub type NodeId = u32;

/// The document node of every [`Dom`].
pub const DOCUMENT: NodeId = 0;

const NONE: u32 = u32::MAX;

/// The kind of a node, with its data.
#[derive(Debug, Clone)]
pub enum NodeData {
    /// The document.
    Document,
    /// A document fragment.
    Fragment,
    /// `<!DOCTYPE name>`.
    Doctype {
        /// The doctype's name (`html`).
        name: StrTendril,
    },
    /// An element.
    Element(Element),
    /// A text node.
    Text(StrTendril),
    /// A comment.
    Comment(StrTendril),
    /// A processing instruction (only in foreign content).
    ProcessingInstruction {
        /// Its target.
        target: StrTendril,
        /// Its data.
        data: StrTendril,
    },
}

/// One node and its links in the tree.
#[derive(Debug, Clone)]
pub struct Node {
    parent: u32,
    first_child: u32,
    last_child: u32,
    prev: u32,
    next: u32,
    /// What the node is.
    pub data: NodeData,
}

fn opt(i: u32) -> Option<NodeId> {
    (i != NONE).then_some(i)
}

/// Why a tree change was refused (the DOM's `HierarchyRequestError`, `NotFoundError`).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TreeError {
    /// The node would become its own ancestor, or cannot have children.
    #[error("HierarchyRequestError: the new child cannot be inserted here")]
    Hierarchy,
    /// The reference node is not a child of the parent.
    #[error("NotFoundError: the node is not a child of this node")]
    NotFound,
}

/// An HTML document: an arena of nodes whose node 0 is the document.
#[derive(Debug, Clone)]
pub struct Dom {
    nodes: Vec<Node>,
    /// The contents fragment of each `<template>` (few pages have any).
    templates: HashMap<NodeId, NodeId>,
    /// Whether the parser found the page in quirks mode.
    pub quirks: bool,
}

impl Default for Dom {
    fn default() -> Self {
        Self::new()
    }
}

impl Dom {
    /// An empty document (no `<html>` element).
    pub fn new() -> Self {
        let mut dom = Dom {
            nodes: Vec::new(),
            templates: HashMap::new(),
            quirks: false,
        };
        dom.create(NodeData::Document);
        dom
    }

    /// Parses a whole page as a browser does (unclosed and stray tags included).
    pub fn parse_document(html: &str) -> Self {
        parse::document(html)
    }

    /// Parses `html` as the contents of the element `context` (as `innerHTML` does) into
    /// this document and returns the new, parentless top-level nodes in order.
    pub fn parse_fragment(&mut self, context: NodeId, html: &str) -> Vec<NodeId> {
        let name = match self.element(context) {
            Some(e) => e.qual_name(),
            None => QualName::new(None, ns!(html), local_name!("body")),
        };
        parse::fragment(self, name, html)
    }

    /// Makes room for `additional` more nodes at once.
    pub(crate) fn reserve(&mut self, additional: usize) {
        self.nodes.reserve_exact(additional);
    }

    /// How many nodes the arena holds (including detached ones).
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the arena holds only the document node.
    pub fn is_empty(&self) -> bool {
        self.nodes.len() <= 1
    }

    /// Bytes held by the arena and its strings (an estimate for memory reports).
    pub fn heap_size(&self) -> usize {
        let mut n = self.nodes.capacity() * std::mem::size_of::<Node>();
        for node in &self.nodes {
            n += match &node.data {
                NodeData::Text(t) | NodeData::Comment(t) => heap_str(t),
                NodeData::Element(e) => {
                    std::mem::size_of_val::<[Attr]>(&e.attrs)
                        + e.attrs.iter().map(|a| heap_str(&a.value)).sum::<usize>()
                }
                _ => 0,
            }
        }
        n
    }

    /// Gives back the arena's spare capacity, and gives each string of the page its own
    /// buffer (see [`Dom::own_strings`]).
    pub fn shrink(&mut self) {
        self.nodes.shrink_to_fit();
        self.own_strings(0);
    }

    /// Gives each text, comment and attribute value of the nodes from `from` on a buffer
    /// of its own, of its own length. The parser's strings are slices of the page's
    /// buffer, one of which would keep the whole page alive, or grew by doubling.
    pub fn own_strings(&mut self, from: usize) {
        fn own(t: &mut StrTendril) {
            // Up to 8 bytes a tendril is inline.
            if t.len() > 8 {
                *t = StrTendril::from_slice(t);
            }
        }
        for n in self.nodes.iter_mut().skip(from) {
            match &mut n.data {
                NodeData::Text(t) | NodeData::Comment(t) => own(t),
                NodeData::Element(e) => {
                    for a in e.attrs.iter_mut() {
                        own(&mut a.value);
                    }
                }
                _ => {}
            }
        }
    }

    /// Adds a parentless node and returns its id.
    pub fn create(&mut self, data: NodeData) -> NodeId {
        let id = self.nodes.len() as NodeId;
        if self.nodes.len() == self.nodes.capacity() {
            // An eighth more, not twice as many: a page is parsed into an arena sized for
            // it, and the few nodes a script adds later (jQuery makes some at start) would
            // otherwise double the arena of every VU's page.
            self.nodes.reserve_exact((self.nodes.len() / 8).max(16));
        }
        self.nodes.push(Node {
            parent: NONE,
            first_child: NONE,
            last_child: NONE,
            prev: NONE,
            next: NONE,
            data,
        });
        id
    }

    /// A new element in the HTML namespace.
    pub fn create_element(&mut self, local: &str) -> NodeId {
        let name = QualName::new(None, ns!(html), LocalName::from(local));
        self.create(NodeData::Element(Element::new(name, Vec::new())))
    }

    /// The node `id` (panics on an id this arena never gave).
    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id as usize]
    }

    /// The node `id`, if this arena gave it.
    pub fn get(&self, id: NodeId) -> Option<&Node> {
        self.nodes.get(id as usize)
    }

    /// The node `id`'s data, mutable.
    pub fn data_mut(&mut self, id: NodeId) -> &mut NodeData {
        &mut self.nodes[id as usize].data
    }

    /// The element data of `id`, if it is an element.
    pub fn element(&self, id: NodeId) -> Option<&Element> {
        match &self.get(id)?.data {
            NodeData::Element(e) => Some(e),
            _ => None,
        }
    }

    /// The element data of `id`, mutable, if it is an element.
    pub fn element_mut(&mut self, id: NodeId) -> Option<&mut Element> {
        match &mut self.nodes.get_mut(id as usize)?.data {
            NodeData::Element(e) => Some(e),
            _ => None,
        }
    }

    /// The parent of `id`.
    pub fn parent(&self, id: NodeId) -> Option<NodeId> {
        opt(self.node(id).parent)
    }
    /// The first child of `id`.
    pub fn first_child(&self, id: NodeId) -> Option<NodeId> {
        opt(self.node(id).first_child)
    }
    /// The last child of `id`.
    pub fn last_child(&self, id: NodeId) -> Option<NodeId> {
        opt(self.node(id).last_child)
    }
    /// The previous sibling of `id`.
    pub fn prev_sibling(&self, id: NodeId) -> Option<NodeId> {
        opt(self.node(id).prev)
    }
    /// The next sibling of `id`.
    pub fn next_sibling(&self, id: NodeId) -> Option<NodeId> {
        opt(self.node(id).next)
    }

    /// The children of `id`, in order.
    pub fn children(&self, id: NodeId) -> Children<'_> {
        Children {
            dom: self,
            next: self.node(id).first_child,
        }
    }

    /// The descendants of `id` in tree order (not `id` itself).
    pub fn descendants(&self, id: NodeId) -> Descendants<'_> {
        Descendants {
            dom: self,
            root: id,
            next: self.node(id).first_child,
        }
    }

    /// Whether `ancestor` is `id` or one of its ancestors.
    pub fn is_inclusive_ancestor(&self, ancestor: NodeId, mut id: NodeId) -> bool {
        loop {
            if id == ancestor {
                return true;
            }
            match self.parent(id) {
                Some(p) => id = p,
                None => return false,
            }
        }
    }

    /// The root of `id`'s tree (the document when attached).
    pub fn root(&self, mut id: NodeId) -> NodeId {
        while let Some(p) = self.parent(id) {
            id = p;
        }
        id
    }

    /// The `<html>` element.
    pub fn document_element(&self) -> Option<NodeId> {
        self.children(DOCUMENT).find(|&c| self.element(c).is_some())
    }

    /// The first child element of the `<html>` element named `local` (`head`, `body`).
    pub fn html_child(&self, local: &str) -> Option<NodeId> {
        let html = self.document_element()?;
        self.children(html)
            .find(|&c| self.element(c).is_some_and(|e| &**e.local_name() == local))
    }

    /// Takes `id` out of its parent's children (it keeps its own subtree).
    pub fn detach(&mut self, id: NodeId) {
        let (parent, prev, next) = {
            let n = self.node(id);
            (n.parent, n.prev, n.next)
        };
        if parent == NONE {
            return;
        }
        if prev != NONE {
            self.nodes[prev as usize].next = next;
        } else {
            self.nodes[parent as usize].first_child = next;
        }
        if next != NONE {
            self.nodes[next as usize].prev = prev;
        } else {
            self.nodes[parent as usize].last_child = prev;
        }
        let n = &mut self.nodes[id as usize];
        n.parent = NONE;
        n.prev = NONE;
        n.next = NONE;
    }

    /// Inserts `child` into `parent` before `before` (at the end when `None`); a
    /// fragment inserts its children instead. `child` is detached first.
    pub fn insert_before(
        &mut self,
        parent: NodeId,
        child: NodeId,
        before: Option<NodeId>,
    ) -> Result<(), TreeError> {
        if let Some(b) = before {
            if self.parent(b) != Some(parent) {
                return Err(TreeError::NotFound);
            }
        }
        let can_have_children = matches!(
            self.node(parent).data,
            NodeData::Document | NodeData::Fragment | NodeData::Element(_)
        );
        if !can_have_children
            || self.is_inclusive_ancestor(child, parent)
            || matches!(self.node(child).data, NodeData::Document)
        {
            return Err(TreeError::Hierarchy);
        }
        if matches!(self.node(child).data, NodeData::Fragment) {
            let kids: Vec<NodeId> = self.children(child).collect();
            for k in kids {
                self.insert_before(parent, k, before)?;
            }
            return Ok(());
        }
        if before == Some(child) {
            return Ok(());
        }
        self.detach(child);
        let next = before.unwrap_or(NONE);
        let prev = match before {
            Some(b) => self.node(b).prev,
            None => self.node(parent).last_child,
        };
        {
            let n = &mut self.nodes[child as usize];
            n.parent = parent;
            n.prev = prev;
            n.next = next;
        }
        if prev != NONE {
            self.nodes[prev as usize].next = child;
        } else {
            self.nodes[parent as usize].first_child = child;
        }
        if next != NONE {
            self.nodes[next as usize].prev = child;
        } else {
            self.nodes[parent as usize].last_child = child;
        }
        Ok(())
    }

    /// Appends `child` as the last child of `parent`.
    pub fn append(&mut self, parent: NodeId, child: NodeId) -> Result<(), TreeError> {
        self.insert_before(parent, child, None)
    }

    /// Removes every child of `id`.
    pub fn clear_children(&mut self, id: NodeId) {
        while let Some(c) = self.first_child(id) {
            self.detach(c);
        }
    }

    /// A copy of `id` (with its subtree when `deep`), parentless, in this arena.
    pub fn clone_node(&mut self, id: NodeId, deep: bool) -> NodeId {
        let data = self.node(id).data.clone();
        let copy = self.create(data);
        if let Some(contents) = self.template_contents(id) {
            // A template's copy has contents of its own: a copy of them when deep.
            let own = if deep {
                self.clone_node(contents, true)
            } else {
                self.create(NodeData::Fragment)
            };
            self.set_template_contents(copy, own);
        }
        if deep {
            let kids: Vec<NodeId> = self.children(id).collect();
            for k in kids {
                let c = self.clone_node(k, true);
                // A fresh parentless copy under a fresh parent: cannot fail.
                let _ = self.append(copy, c);
            }
        }
        copy
    }

    /// The contents fragment of the `<template>` element `id`.
    pub fn template_contents(&self, id: NodeId) -> Option<NodeId> {
        self.templates.get(&id).copied()
    }

    pub(crate) fn set_template_contents(&mut self, template: NodeId, contents: NodeId) {
        self.templates.insert(template, contents);
    }

    /// Copies `id` (and its subtree) from another document into this one; returns the
    /// new id and the pairs (old id, new id) of every copied node.
    pub fn import(&mut self, other: &Dom, id: NodeId) -> (NodeId, Vec<(NodeId, NodeId)>) {
        let mut map = Vec::new();
        let new = self.import_rec(other, id, &mut map);
        (new, map)
    }

    fn import_rec(&mut self, other: &Dom, id: NodeId, map: &mut Vec<(NodeId, NodeId)>) -> NodeId {
        let copy = self.create(other.node(id).data.clone());
        map.push((id, copy));
        if let Some(contents) = other.template_contents(id) {
            // The copied id names a node of the other arena: bring the contents too.
            let own = self.import_rec(other, contents, map);
            self.set_template_contents(copy, own);
        }
        for k in other.children(id) {
            let c = self.import_rec(other, k, map);
            let _ = self.append(copy, c);
        }
        copy
    }

    /// The text of `id`: its data for text and comments, else its descendant texts.
    pub fn text_content(&self, id: NodeId) -> String {
        match &self.node(id).data {
            NodeData::Text(t) | NodeData::Comment(t) => t.to_string(),
            NodeData::ProcessingInstruction { data, .. } => data.to_string(),
            _ => {
                let mut s = String::new();
                for d in self.descendants(id) {
                    if let NodeData::Text(t) = &self.node(d).data {
                        s.push_str(t);
                    }
                }
                s
            }
        }
    }

    /// Replaces the children of `id` with one text node (none for an empty string);
    /// sets the data of a text or comment node.
    pub fn set_text_content(&mut self, id: NodeId, text: &str) {
        match &mut self.nodes[id as usize].data {
            NodeData::Text(t) | NodeData::Comment(t) => *t = StrTendril::from_slice(text),
            NodeData::ProcessingInstruction { data, .. } => *data = StrTendril::from_slice(text),
            NodeData::Doctype { .. } => {}
            _ => {
                self.clear_children(id);
                if !text.is_empty() {
                    let t = self.create(NodeData::Text(StrTendril::from_slice(text)));
                    let _ = self.append(id, t);
                }
            }
        }
    }

    /// Sets (or adds) the attribute `name` of element `id`.
    pub fn set_attr(&mut self, id: NodeId, name: &str, value: &str) {
        if let Some(e) = self.element_mut(id) {
            let value = StrTendril::from_slice(value);
            match e.attrs.iter_mut().find(|a| &**a.local_name() == name) {
                Some(a) => a.value = value,
                None => e.edit_attrs(|attrs| attrs.push(Attr::plain(name, value))),
            }
        }
    }

    /// Removes the attribute `name` of element `id`; whether it was there.
    pub fn remove_attr(&mut self, id: NodeId, name: &str) -> bool {
        match self.element_mut(id) {
            Some(e) => {
                let before = e.attrs.len();
                e.edit_attrs(|attrs| attrs.retain(|a| &**a.local_name() != name));
                before != e.attrs.len()
            }
            None => false,
        }
    }

    /// DOM `compareDocumentPosition(other)` of `id`: the bitmask of the standard.
    pub fn compare_position(&self, id: NodeId, other: NodeId) -> u16 {
        const DISCONNECTED: u16 = 1;
        const PRECEDING: u16 = 2;
        const FOLLOWING: u16 = 4;
        const CONTAINS: u16 = 8;
        const CONTAINED_BY: u16 = 16;
        const IMPLEMENTATION_SPECIFIC: u16 = 32;
        if id == other {
            return 0;
        }
        let chain = |mut n: NodeId| {
            let mut v = vec![n];
            while let Some(p) = self.parent(n) {
                v.push(p);
                n = p;
            }
            v.reverse();
            v
        };
        let (a, b) = (chain(id), chain(other));
        if a[0] != b[0] {
            let order = if id < other { FOLLOWING } else { PRECEDING };
            return DISCONNECTED | IMPLEMENTATION_SPECIFIC | order;
        }
        let common = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
        if common == a.len() {
            return CONTAINED_BY | FOLLOWING;
        }
        if common == b.len() {
            return CONTAINS | PRECEDING;
        }
        // Siblings under the common ancestor: which comes first?
        let (sa, sb) = (a[common], b[common]);
        let mut n = self.next_sibling(sa);
        while let Some(s) = n {
            if s == sb {
                return FOLLOWING;
            }
            n = self.next_sibling(s);
        }
        PRECEDING
    }
}

fn heap_str(t: &StrTendril) -> usize {
    // Tendrils of up to 8 bytes live inline; longer ones own (or share) a buffer.
    if t.len() > 8 {
        t.len()
    } else {
        0
    }
}

/// Iterator over a node's children.
pub struct Children<'a> {
    dom: &'a Dom,
    next: u32,
}

impl Iterator for Children<'_> {
    type Item = NodeId;
    fn next(&mut self) -> Option<NodeId> {
        let id = opt(self.next)?;
        self.next = self.dom.node(id).next;
        Some(id)
    }
}

/// Iterator over a node's descendants in tree order.
pub struct Descendants<'a> {
    dom: &'a Dom,
    root: NodeId,
    next: u32,
}

impl Iterator for Descendants<'_> {
    type Item = NodeId;
    fn next(&mut self) -> Option<NodeId> {
        let id = opt(self.next)?;
        let n = self.dom.node(id);
        self.next = if n.first_child != NONE {
            n.first_child
        } else {
            let mut cur = id;
            loop {
                if cur == self.root {
                    break NONE;
                }
                let c = self.dom.node(cur);
                if c.next != NONE {
                    break c.next;
                }
                match opt(c.parent) {
                    Some(p) if p != self.root => cur = p,
                    _ => break NONE,
                }
            }
        };
        Some(id)
    }
}

#[cfg(test)]
mod tests;
