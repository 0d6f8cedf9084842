//! Element and attribute names in 16 bytes: nearly all are a local name alone (an HTML
//! element, an attribute of no namespace), the rest keep their whole qualified name.

use html5ever::tendril::StrTendril;
use html5ever::{ns, LocalName, Namespace, Prefix, QualName};

static HTML: Namespace = ns!(html);
static NONE: Namespace = ns!();

/// A name: its local part alone when it has no prefix and the usual namespace of its
/// place (HTML for elements, none for attributes), else the whole qualified name.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Name {
    Local(LocalName),
    Qualified(Box<QualName>),
}

impl Name {
    fn new(name: QualName, usual: &Namespace) -> Self {
        if name.prefix.is_none() && name.ns == *usual {
            Name::Local(name.local)
        } else {
            Name::Qualified(Box::new(name))
        }
    }

    fn local(&self) -> &LocalName {
        match self {
            Name::Local(l) => l,
            Name::Qualified(q) => &q.local,
        }
    }

    fn ns<'a>(&'a self, usual: &'a Namespace) -> &'a Namespace {
        match self {
            Name::Local(_) => usual,
            Name::Qualified(q) => &q.ns,
        }
    }

    fn prefix(&self) -> Option<&Prefix> {
        match self {
            Name::Local(_) => None,
            Name::Qualified(q) => q.prefix.as_ref(),
        }
    }

    fn qual(&self, usual: &Namespace) -> QualName {
        match self {
            Name::Local(l) => QualName::new(None, usual.clone(), l.clone()),
            Name::Qualified(q) => (**q).clone(),
        }
    }
}

/// An element: its name and attributes in source order.
#[derive(Debug, Clone)]
pub struct Element {
    name: Name,
    /// Attributes in the order they appeared.
    pub attrs: Box<[Attr]>,
}

impl Element {
    /// A new element.
    pub fn new(name: QualName, attrs: Vec<Attr>) -> Self {
        Element {
            name: Name::new(name, &HTML),
            attrs: attrs.into_boxed_slice(),
        }
    }

    /// Changes the attributes as a vector (they are kept as an exact slice: changes are
    /// rare next to reads).
    pub fn edit_attrs(&mut self, f: impl FnOnce(&mut Vec<Attr>)) {
        let mut attrs = std::mem::take(&mut self.attrs).into_vec();
        f(&mut attrs);
        self.attrs = attrs.into_boxed_slice();
    }

    /// Its local name (`div`).
    pub fn local_name(&self) -> &LocalName {
        self.name.local()
    }

    /// Its namespace.
    pub fn ns(&self) -> &Namespace {
        self.name.ns(&HTML)
    }

    /// Whether it is in the HTML namespace.
    pub fn is_html(&self) -> bool {
        *self.ns() == HTML
    }

    /// Its whole name.
    pub fn qual_name(&self) -> QualName {
        self.name.qual(&HTML)
    }

    /// Whether `other` has the same namespace and local name.
    pub fn same_name(&self, other: &Element) -> bool {
        self.local_name() == other.local_name() && self.ns() == other.ns()
    }

    /// The value of the attribute named `name` (no namespace), if present.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|a| &**a.local_name() == name)
            .map(|a| &*a.value)
    }
}

/// An attribute of an element.
#[derive(Debug, Clone)]
pub struct Attr {
    name: Name,
    /// Its value.
    pub value: StrTendril,
}

impl Attr {
    /// An attribute named `name`.
    pub fn new(name: QualName, value: StrTendril) -> Self {
        Attr {
            name: Name::new(name, &NONE),
            value,
        }
    }

    /// An attribute of no namespace.
    pub fn plain(local: &str, value: StrTendril) -> Self {
        Attr {
            name: Name::Local(LocalName::from(local)),
            value,
        }
    }

    /// Its local name (`href`).
    pub fn local_name(&self) -> &LocalName {
        self.name.local()
    }

    /// Its namespace (none for most).
    pub fn ns(&self) -> &Namespace {
        self.name.ns(&NONE)
    }

    /// Its prefix (`xlink` of `xlink:href`), if any.
    pub fn prefix(&self) -> Option<&Prefix> {
        self.name.prefix()
    }

    /// Whether it has the same namespace and local name as `name`.
    pub fn is(&self, name: &QualName) -> bool {
        *self.local_name() == name.local && *self.ns() == name.ns
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_take_sixteen_bytes_and_keep_what_is_unusual() {
        assert_eq!(std::mem::size_of::<Attr>(), 32);
        assert_eq!(std::mem::size_of::<Element>(), 32);
        let svg = Element::new(
            QualName::new(None, ns!(svg), LocalName::from("circle")),
            vec![Attr::new(
                QualName::new(
                    Some(Prefix::from("xlink")),
                    ns!(xlink),
                    LocalName::from("href"),
                ),
                StrTendril::from_slice("#a"),
            )],
        );
        assert!(!svg.is_html());
        assert_eq!(&**svg.ns(), "http://www.w3.org/2000/svg");
        assert_eq!(svg.attrs[0].prefix().map(|p| &**p), Some("xlink"));
        assert_eq!(&**svg.attrs[0].ns(), "http://www.w3.org/1999/xlink");
        let div = Element::new(
            QualName::new(None, ns!(html), LocalName::from("div")),
            vec![],
        );
        assert!(div.is_html() && !div.same_name(&svg));
        assert_eq!(
            div.qual_name(),
            QualName::new(None, ns!(html), LocalName::from("div"))
        );
    }
}
