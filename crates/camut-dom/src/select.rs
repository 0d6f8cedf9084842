//! CSS selectors (Selectors Level 4 as Servo's `selectors` crate parses them) matched
//! against a [`Dom`].

use std::fmt;

use cssparser::{CowRcStr, ParseError, ToCss};
use html5ever::{local_name, LocalName, Namespace};
use precomputed_hash::PrecomputedHash;
use selectors::attr::{AttrSelectorOperation, CaseSensitivity, NamespaceConstraint};
use selectors::bloom::BloomFilter;
use selectors::matching::{self, MatchingContext};
use selectors::parser::{self, ParseRelative, SelectorList, SelectorParseErrorKind};
use selectors::OpaqueElement;

use crate::{Dom, NodeData, NodeId};

/// A selector could not be parsed (the DOM's `SyntaxError`).
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("'{selector}' is not a valid selector")]
pub struct SelectorError {
    /// The text given.
    pub selector: String,
}

/// A parsed selector list (`a, b > c`).
#[derive(Debug, Clone)]
pub struct Selector(SelectorList<Impl>);

impl Selector {
    /// Parses a selector list.
    pub fn parse(text: &str) -> Result<Self, SelectorError> {
        let mut parser = cssparser::Parser::new(text);
        SelectorList::parse(&Parser, &mut parser, ParseRelative::No)
            .map(Selector)
            .map_err(|_| SelectorError {
                selector: text.to_string(),
            })
    }
}

impl Dom {
    /// Whether element `id` matches `selector` (`:scope` is `scope`, else the root).
    pub fn matches(&self, id: NodeId, selector: &Selector, scope: Option<NodeId>) -> bool {
        if self.element(id).is_none() {
            return false;
        }
        let mut caches = Default::default();
        let mut cx = MatchingContext::new(
            matching::MatchingMode::Normal,
            None,
            &mut caches,
            matching::QuirksMode::NoQuirks,
            matching::NeedsSelectorFlags::No,
            matching::MatchingForInvalidation::No,
        );
        cx.scope_element = scope.map(|s| selectors::Element::opaque(&El { dom: self, id: s }));
        let el = El { dom: self, id };
        selector
            .0
            .slice()
            .iter()
            .any(|s| matching::matches_selector(s, 0, None, &el, &mut cx))
    }

    /// The descendant elements of `root` matching `selector`, in tree order; at most
    /// `limit` of them.
    pub fn select(&self, root: NodeId, selector: &Selector, limit: usize) -> Vec<NodeId> {
        let mut out = Vec::new();
        let scope = self.element(root).is_some().then_some(root);
        for d in self.descendants(root) {
            if out.len() >= limit {
                break;
            }
            if self.matches(d, selector, scope) {
                out.push(d);
            }
        }
        out
    }
}

/// An element of a [`Dom`] as the matcher sees it.
#[derive(Clone, Copy)]
struct El<'a> {
    dom: &'a Dom,
    id: NodeId,
}

impl fmt::Debug for El<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "El({})", self.id)
    }
}

impl El<'_> {
    fn element(&self) -> &crate::Element {
        match &self.dom.node(self.id).data {
            NodeData::Element(e) => e,
            _ => unreachable!("El wraps elements only"),
        }
    }
    fn wrap(&self, id: Option<NodeId>) -> Option<Self> {
        id.map(|id| El { dom: self.dom, id })
    }
    fn sibling_element(&self, forward: bool) -> Option<Self> {
        let mut n = self.id;
        loop {
            n = if forward {
                self.dom.next_sibling(n)?
            } else {
                self.dom.prev_sibling(n)?
            };
            if self.dom.element(n).is_some() {
                return self.wrap(Some(n));
            }
        }
    }
}

impl selectors::Element for El<'_> {
    type Impl = Impl;

    fn opaque(&self) -> OpaqueElement {
        OpaqueElement::new(self.dom.node(self.id))
    }
    fn parent_element(&self) -> Option<Self> {
        let p = self.dom.parent(self.id)?;
        self.dom.element(p).map(|_| El {
            dom: self.dom,
            id: p,
        })
    }
    fn parent_node_is_shadow_root(&self) -> bool {
        false
    }
    fn containing_shadow_host(&self) -> Option<Self> {
        None
    }
    fn is_pseudo_element(&self) -> bool {
        false
    }
    fn prev_sibling_element(&self) -> Option<Self> {
        self.sibling_element(false)
    }
    fn next_sibling_element(&self) -> Option<Self> {
        self.sibling_element(true)
    }
    fn first_element_child(&self) -> Option<Self> {
        let c = self
            .dom
            .children(self.id)
            .find(|&c| self.dom.element(c).is_some());
        self.wrap(c)
    }
    fn is_html_element_in_html_document(&self) -> bool {
        self.element().is_html()
    }
    fn has_local_name(&self, name: &CssLocalName) -> bool {
        *self.element().local_name() == name.0
    }
    fn has_namespace(&self, ns: &Namespace) -> bool {
        self.element().ns() == ns
    }
    fn is_same_type(&self, other: &Self) -> bool {
        self.element().same_name(other.element())
    }
    fn attr_matches(
        &self,
        ns: &NamespaceConstraint<&Namespace>,
        local_name: &CssLocalName,
        operation: &AttrSelectorOperation<&CssString>,
    ) -> bool {
        self.element().attrs.iter().any(|a| {
            !matches!(*ns, NamespaceConstraint::Specific(url) if url != a.ns())
                && local_name.0 == *a.local_name()
                && operation.eval_str(&a.value)
        })
    }
    fn match_non_ts_pseudo_class(
        &self,
        pc: &PseudoClass,
        _: &mut MatchingContext<'_, Impl>,
    ) -> bool {
        let e = self.element();
        let form_control = matches!(
            &**e.local_name(),
            "button" | "input" | "select" | "textarea" | "option" | "optgroup" | "fieldset"
        );
        match pc {
            PseudoClass::Link | PseudoClass::AnyLink => self.is_link(),
            PseudoClass::Disabled => form_control && e.attr("disabled").is_some(),
            PseudoClass::Enabled => form_control && e.attr("disabled").is_none(),
        }
    }
    fn match_pseudo_element(&self, pe: &PseudoElement, _: &mut MatchingContext<'_, Impl>) -> bool {
        match *pe {}
    }
    fn apply_selector_flags(&self, _: matching::ElementSelectorFlags) {}
    fn is_link(&self) -> bool {
        let e = self.element();
        e.is_html()
            && matches!(*e.local_name(), local_name!("a") | local_name!("area"))
            && e.attr("href").is_some()
    }
    fn is_html_slot_element(&self) -> bool {
        false
    }
    fn has_id(&self, id: &CssLocalName, case: CaseSensitivity) -> bool {
        self.element()
            .attr("id")
            .is_some_and(|v| case.eq(id.0.as_bytes(), v.as_bytes()))
    }
    fn has_class(&self, name: &CssLocalName, case: CaseSensitivity) -> bool {
        self.element().attr("class").is_some_and(|v| {
            v.split_ascii_whitespace()
                .any(|c| case.eq(name.0.as_bytes(), c.as_bytes()))
        })
    }
    fn has_custom_state(&self, _: &CssLocalName) -> bool {
        false
    }
    fn imported_part(&self, _: &CssLocalName) -> Option<CssLocalName> {
        None
    }
    fn is_part(&self, _: &CssLocalName) -> bool {
        false
    }
    fn is_empty(&self) -> bool {
        !self
            .dom
            .children(self.id)
            .any(|c| match &self.dom.node(c).data {
                NodeData::Element(_) => true,
                NodeData::Text(t) => !t.is_empty(),
                _ => false,
            })
    }
    fn is_root(&self) -> bool {
        self.dom
            .parent(self.id)
            .is_some_and(|p| matches!(self.dom.node(p).data, NodeData::Document))
    }
    fn add_element_unique_hashes(&self, _: &mut BloomFilter) -> bool {
        false
    }
}

/// The selector parser: `:is`, `:where` and `:has` on, a few state pseudo-classes.
struct Parser;

impl<'i> parser::Parser<'i> for Parser {
    type Impl = Impl;
    type Error = SelectorParseErrorKind;

    fn parse_is_and_where(&self) -> bool {
        true
    }
    fn parse_has(&self) -> bool {
        true
    }
    fn parse_non_ts_pseudo_class(
        &self,
        name: CowRcStr<'i>,
    ) -> Result<PseudoClass, ParseError<Self::Error>> {
        Ok(match &*name.to_ascii_lowercase() {
            "link" => PseudoClass::Link,
            "any-link" => PseudoClass::AnyLink,
            "disabled" => PseudoClass::Disabled,
            "enabled" => PseudoClass::Enabled,
            _ => {
                return Err(ParseError::custom(
                    SelectorParseErrorKind::UnsupportedPseudoClassOrElement,
                ))
            }
        })
    }
}

/// The selector implementation's types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Impl;

impl parser::SelectorImpl for Impl {
    type ExtraMatchingData<'a> = ();
    type AttrValue = CssString;
    type Identifier = CssLocalName;
    type LocalName = CssLocalName;
    type NamespaceUrl = Namespace;
    type NamespacePrefix = CssLocalName;
    type BorrowedNamespaceUrl = Namespace;
    type BorrowedLocalName = CssLocalName;
    type NonTSPseudoClass = PseudoClass;
    type PseudoElement = PseudoElement;
}

/// An attribute value in a selector.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct CssString(String);

impl<'a> From<&'a str> for CssString {
    fn from(s: &'a str) -> Self {
        CssString(s.to_string())
    }
}
impl AsRef<str> for CssString {
    fn as_ref(&self) -> &str {
        &self.0
    }
}
impl ToCss for CssString {
    fn to_css<W: fmt::Write>(&self, dest: &mut W) -> fmt::Result {
        cssparser::serialize_string(&self.0, dest)
    }
}

/// A name in a selector, interned as html5ever interns names.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct CssLocalName(LocalName);

impl<'a> From<&'a str> for CssLocalName {
    fn from(s: &'a str) -> Self {
        CssLocalName(s.into())
    }
}
impl ToCss for CssLocalName {
    fn to_css<W: fmt::Write>(&self, dest: &mut W) -> fmt::Result {
        dest.write_str(&self.0)
    }
}
impl PrecomputedHash for CssLocalName {
    fn precomputed_hash(&self) -> u32 {
        self.0.precomputed_hash()
    }
}

/// The state pseudo-classes supported (`:checked` and `:selected` depend on live
/// form state, which scripts keep: their engine handles those).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PseudoClass {
    Link,
    AnyLink,
    Disabled,
    Enabled,
}

impl parser::NonTSPseudoClass for PseudoClass {
    fn is_active_or_hover(&self) -> bool {
        false
    }
    fn is_user_action_state(&self) -> bool {
        false
    }
}
impl ToCss for PseudoClass {
    fn to_css<W: fmt::Write>(&self, dest: &mut W) -> fmt::Result {
        dest.write_str(match self {
            PseudoClass::Link => ":link",
            PseudoClass::AnyLink => ":any-link",
            PseudoClass::Disabled => ":disabled",
            PseudoClass::Enabled => ":enabled",
        })
    }
}

/// No pseudo-elements: a static document has no rendering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PseudoElement {}

impl parser::PseudoElement for PseudoElement {}
impl ToCss for PseudoElement {
    fn to_css<W: fmt::Write>(&self, _: &mut W) -> fmt::Result {
        match *self {}
    }
}
