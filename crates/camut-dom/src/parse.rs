//! html5ever's tree builder writing into a [`Dom`] arena.

use std::borrow::Cow;
use std::cell::{Ref, RefCell};

use html5ever::tendril::{StrTendril, TendrilSink};
use html5ever::tree_builder::{ElemName, ElementFlags, NodeOrText, QuirksMode, TreeSink};
use html5ever::{expanded_name, local_name, ns, Attribute, LocalName, Namespace, QualName};

use crate::{Attr, Dom, Element, NodeData, NodeId, DOCUMENT};

/// The sink: the arena being built and the node the parser treats as the document.
struct Sink {
    dom: RefCell<Dom>,
    document: NodeId,
}

/// Bytes of HTML per node, a little under what real pages have (about 38 for the
/// benchmark's shop page): the arena is sized once from the page's length, grows by an
/// eighth when a page is denser, and is trimmed after the parse.
const HTML_BYTES_PER_NODE: usize = 32;

pub(crate) fn document(html: &str) -> Dom {
    let mut dom = Dom::new();
    dom.reserve(html.len() / HTML_BYTES_PER_NODE);
    let sink = Sink {
        dom: RefCell::new(dom),
        document: DOCUMENT,
    };
    let mut dom = html5ever::parse_document(sink, Default::default()).one(html);
    // A page is mostly read from then on.
    dom.shrink();
    dom
}

/// Parses a fragment into `dom`: the parser gets a scratch document node of its own,
/// whose `<html>` child receives the fragment's nodes.
pub(crate) fn fragment(dom: &mut Dom, context: QualName, html: &str) -> Vec<NodeId> {
    let mut taken = std::mem::take(dom);
    let first_new = taken.len();
    let scratch = taken.create(NodeData::Fragment);
    let sink = Sink {
        dom: RefCell::new(taken),
        document: scratch,
    };
    let mut built =
        html5ever::parse_fragment(sink, Default::default(), context, Vec::new(), false).one(html);
    let root = built.first_child(scratch);
    let nodes: Vec<NodeId> = root
        .map(|r| built.children(r).collect())
        .unwrap_or_default();
    for &n in &nodes {
        built.detach(n);
    }
    built.own_strings(first_new);
    *dom = built;
    nodes
}

/// The element the tree builder asks the name of.
#[derive(Debug)]
struct ElemRef<'a>(Ref<'a, Element>);

impl ElemName for ElemRef<'_> {
    fn ns(&self) -> &Namespace {
        self.0.ns()
    }
    fn local_name(&self) -> &LocalName {
        self.0.local_name()
    }
}

impl Sink {
    fn append_text(dom: &mut Dom, parent: NodeId, before: Option<NodeId>, text: StrTendril) {
        let prev = match before {
            Some(b) => dom.prev_sibling(b),
            None => dom.last_child(parent),
        };
        if let Some(p) = prev {
            if let NodeData::Text(t) = dom.data_mut(p) {
                t.push_tendril(&text);
                return;
            }
        }
        let t = dom.create(NodeData::Text(text));
        let _ = dom.insert_before(parent, t, before);
    }
}

impl TreeSink for Sink {
    type Handle = NodeId;
    type Output = Dom;
    type ElemName<'a> = ElemRef<'a>;

    fn finish(self) -> Dom {
        self.dom.into_inner()
    }

    fn parse_error(&self, _msg: Cow<'static, str>) {}

    fn get_document(&self) -> NodeId {
        self.document
    }

    fn elem_name<'a>(&'a self, target: &'a NodeId) -> ElemRef<'a> {
        ElemRef(Ref::map(self.dom.borrow(), |d| {
            match &d.node(*target).data {
                NodeData::Element(e) => e,
                // The tree builder asks only for element names.
                _ => unreachable!("elem_name of a non-element"),
            }
        }))
    }

    fn create_element(&self, name: QualName, attrs: Vec<Attribute>, _: ElementFlags) -> NodeId {
        let mut dom = self.dom.borrow_mut();
        let template = name.expanded() == expanded_name!(html "template");
        let contents = template.then(|| dom.create(NodeData::Fragment));
        let attrs = attrs.into_iter().map(|a| Attr::new(a.name, a.value));
        let id = dom.create(NodeData::Element(Element::new(name, attrs.collect())));
        if let Some(c) = contents {
            dom.set_template_contents(id, c);
        }
        id
    }

    fn create_comment(&self, text: StrTendril) -> NodeId {
        self.dom.borrow_mut().create(NodeData::Comment(text))
    }

    fn create_pi(&self, target: StrTendril, data: StrTendril) -> NodeId {
        self.dom
            .borrow_mut()
            .create(NodeData::ProcessingInstruction { target, data })
    }

    fn append(&self, parent: &NodeId, child: NodeOrText<NodeId>) {
        let mut dom = self.dom.borrow_mut();
        match child {
            NodeOrText::AppendNode(n) => {
                let _ = dom.append(*parent, n);
            }
            NodeOrText::AppendText(t) => Self::append_text(&mut dom, *parent, None, t),
        }
    }

    fn append_based_on_parent_node(
        &self,
        element: &NodeId,
        prev_element: &NodeId,
        child: NodeOrText<NodeId>,
    ) {
        let has_parent = self.dom.borrow().parent(*element).is_some();
        if has_parent {
            self.append_before_sibling(element, child)
        } else {
            self.append(prev_element, child)
        }
    }

    fn append_doctype_to_document(&self, name: StrTendril, _: StrTendril, _: StrTendril) {
        let mut dom = self.dom.borrow_mut();
        let d = dom.create(NodeData::Doctype { name });
        let _ = dom.append(self.document, d);
    }

    fn get_template_contents(&self, target: &NodeId) -> NodeId {
        let mut dom = self.dom.borrow_mut();
        match dom.template_contents(*target) {
            Some(c) => c,
            // Only asked of templates, which got contents when created.
            None => dom.create(NodeData::Fragment),
        }
    }

    fn same_node(&self, x: &NodeId, y: &NodeId) -> bool {
        x == y
    }

    fn set_quirks_mode(&self, mode: QuirksMode) {
        self.dom.borrow_mut().quirks = mode == QuirksMode::Quirks;
    }

    fn append_before_sibling(&self, sibling: &NodeId, new_node: NodeOrText<NodeId>) {
        let mut dom = self.dom.borrow_mut();
        let Some(parent) = dom.parent(*sibling) else {
            return;
        };
        match new_node {
            NodeOrText::AppendNode(n) => {
                let _ = dom.insert_before(parent, n, Some(*sibling));
            }
            NodeOrText::AppendText(t) => Self::append_text(&mut dom, parent, Some(*sibling), t),
        }
    }

    fn add_attrs_if_missing(&self, target: &NodeId, attrs: Vec<Attribute>) {
        let mut dom = self.dom.borrow_mut();
        if let Some(e) = dom.element_mut(*target) {
            e.edit_attrs(|all| {
                for a in attrs {
                    if !all.iter().any(|b| b.is(&a.name)) {
                        all.push(Attr::new(a.name, a.value));
                    }
                }
            });
        }
    }

    fn remove_from_parent(&self, target: &NodeId) {
        self.dom.borrow_mut().detach(*target);
    }

    fn reparent_children(&self, node: &NodeId, new_parent: &NodeId) {
        let mut dom = self.dom.borrow_mut();
        let kids: Vec<NodeId> = dom.children(*node).collect();
        for k in kids {
            let _ = dom.append(*new_parent, k);
        }
    }
}
