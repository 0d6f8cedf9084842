//! The native functions `window.js` calls (`N.*`): documents as Rust arenas behind a
//! small JS class, addressed by node ids; URLs; base64.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use base64::Engine as _;
use camut_dom::{Dom, NodeData, NodeId, Selector};
use rquickjs::class::{JsClass, Readable, Trace, Tracer};
use rquickjs::function::Opt;
use rquickjs::{Class, Ctx, Exception, Function, JsLifetime, Object, Value};

use crate::campaign::BrowserOptions;

/// One document's arena, owned by its JS handle: freed when the page's objects are.
pub(crate) struct DomHandle {
    dom: RefCell<Dom>,
}

impl<'js> Trace<'js> for DomHandle {
    fn trace<'a>(&self, _: Tracer<'a, 'js>) {}
}

// SAFETY: DomHandle holds no JS values, so it lives as long as any lifetime asks.
unsafe impl<'js> JsLifetime<'js> for DomHandle {
    type Changed<'to> = DomHandle;
}

impl<'js> JsClass<'js> for DomHandle {
    const NAME: &'static str = "DocumentArena";
    type Mutable = Readable;
    fn constructor(_: &Ctx<'js>) -> rquickjs::Result<Option<rquickjs::function::Constructor<'js>>> {
        Ok(None)
    }
}

type H<'js> = Class<'js, DomHandle>;

/// Parsed selectors, by text: jQuery asks the same few again and again.
struct Selectors {
    map: HashMap<String, Rc<Selector>>,
}

/// Most selectors kept parsed per worker.
const SELECTOR_CACHE: usize = 256;

struct State {
    options: Rc<BrowserOptions>,
    selectors: RefCell<Selectors>,
}

impl State {
    fn selector(&self, ctx: &Ctx<'_>, text: &str) -> rquickjs::Result<Rc<Selector>> {
        if let Some(s) = self.selectors.borrow().map.get(text) {
            return Ok(s.clone());
        }
        let s = Rc::new(
            Selector::parse(text)
                .map_err(|e| Exception::throw_syntax(ctx, &format!("SyntaxError: {e}")))?,
        );
        let mut cache = self.selectors.borrow_mut();
        if cache.map.len() >= SELECTOR_CACHE {
            cache.map.clear();
        }
        cache.map.insert(text.to_string(), s.clone());
        Ok(s)
    }

    fn check_size(&self, ctx: &Ctx<'_>, html: &str) -> rquickjs::Result<()> {
        let max = self.options.max_document_bytes;
        if html.len() > max {
            return Err(Exception::throw_range(
                ctx,
                &format!(
                    "the HTML is {} bytes, over browserEmulation.maxDocumentBytes ({max}); raise that setting to parse it",
                    html.len()
                ),
            ));
        }
        Ok(())
    }

    fn check_nodes(&self, ctx: &Ctx<'_>, dom: &Dom) -> rquickjs::Result<()> {
        let max = self.options.max_document_nodes;
        if dom.len() > max {
            return Err(Exception::throw_range(
                ctx,
                &format!(
                    "the document holds {} nodes, over browserEmulation.maxDocumentNodes ({max}); raise that setting for bigger pages",
                    dom.len()
                ),
            ));
        }
        Ok(())
    }
}

/// Checks that `id` is a node of `dom` (a script may have tampered with a wrapper).
fn valid(ctx: &Ctx<'_>, dom: &Dom, id: u32) -> rquickjs::Result<NodeId> {
    if (id as usize) < dom.len() {
        Ok(id)
    } else {
        Err(Exception::throw_type(
            ctx,
            "the node does not belong to its document",
        ))
    }
}

fn id_or(v: Option<NodeId>) -> i32 {
    v.map(|i| i as i32).unwrap_or(-1)
}

fn null_or<'js>(ctx: &Ctx<'js>, v: Option<&str>) -> rquickjs::Result<Value<'js>> {
    match v {
        Some(s) => Ok(rquickjs::String::from_str(ctx.clone(), s)?.into_value()),
        None => Ok(Value::new_null(ctx.clone())),
    }
}

/// Makes the natives object. The functions take a document handle and node ids.
pub(crate) fn make<'js>(
    ctx: &Ctx<'js>,
    options: Rc<BrowserOptions>,
) -> rquickjs::Result<Object<'js>> {
    let st = Rc::new(State {
        options,
        selectors: RefCell::new(Selectors {
            map: HashMap::new(),
        }),
    });
    let n = Object::new(ctx.clone())?;
    macro_rules! native {
        ($name:literal, $f:expr) => {
            n.set($name, Function::new(ctx.clone(), $f)?.with_name($name)?)?;
        };
    }

    let s = st.clone();
    native!("parse", move |ctx: Ctx<'js>,
                           html: String|
          -> rquickjs::Result<H<'js>> {
        s.check_size(&ctx, &html)?;
        let dom = Dom::parse_document(&html);
        s.check_nodes(&ctx, &dom)?;
        Class::instance(
            ctx,
            DomHandle {
                dom: RefCell::new(dom),
            },
        )
    });
    let s = st.clone();
    native!("reset", move |ctx: Ctx<'js>,
                           h: H<'js>,
                           html: String|
          -> rquickjs::Result<()> {
        s.check_size(&ctx, &html)?;
        let dom = Dom::parse_document(&html);
        s.check_nodes(&ctx, &dom)?;
        *h.borrow().dom.borrow_mut() = dom;
        Ok(())
    });
    native!("cloneDoc", |ctx: Ctx<'js>,
                         h: H<'js>|
     -> rquickjs::Result<H<'js>> {
        let dom = h.borrow().dom.borrow().clone();
        Class::instance(
            ctx,
            DomHandle {
                dom: RefCell::new(dom),
            },
        )
    });
    native!("type", |ctx: Ctx<'js>,
                     h: H<'js>,
                     id: u32|
     -> rquickjs::Result<i32> {
        let b = h.borrow();
        let dom = b.dom.borrow();
        let id = valid(&ctx, &dom, id)?;
        Ok(match dom.node(id).data {
            NodeData::Element(_) => 1,
            NodeData::Text(_) => 3,
            NodeData::ProcessingInstruction { .. } => 7,
            NodeData::Comment(_) => 8,
            NodeData::Document => 9,
            NodeData::Doctype { .. } => 10,
            NodeData::Fragment => 11,
        })
    });
    native!("rel", |ctx: Ctx<'js>,
                    h: H<'js>,
                    id: u32,
                    k: u32|
     -> rquickjs::Result<i32> {
        let b = h.borrow();
        let dom = b.dom.borrow();
        let id = valid(&ctx, &dom, id)?;
        Ok(id_or(match k {
            0 => dom.parent(id),
            1 => dom.first_child(id),
            2 => dom.last_child(id),
            3 => dom.prev_sibling(id),
            _ => dom.next_sibling(id),
        }))
    });
    native!("kids", |ctx: Ctx<'js>,
                     h: H<'js>,
                     id: u32,
                     elements: bool|
     -> rquickjs::Result<Vec<u32>> {
        let b = h.borrow();
        let dom = b.dom.borrow();
        let id = valid(&ctx, &dom, id)?;
        Ok(dom
            .children(id)
            .filter(|&c| !elements || dom.element(c).is_some())
            .collect())
    });
    native!("root", |ctx: Ctx<'js>,
                     h: H<'js>,
                     id: u32|
     -> rquickjs::Result<u32> {
        let b = h.borrow();
        let dom = b.dom.borrow();
        Ok(dom.root(valid(&ctx, &dom, id)?))
    });
    native!("text", |ctx: Ctx<'js>,
                     h: H<'js>,
                     id: u32|
     -> rquickjs::Result<String> {
        let b = h.borrow();
        let dom = b.dom.borrow();
        Ok(dom.text_content(valid(&ctx, &dom, id)?))
    });
    let s = st.clone();
    native!("setText", move |ctx: Ctx<'js>,
                             h: H<'js>,
                             id: u32,
                             text: String|
          -> rquickjs::Result<()> {
        let b = h.borrow();
        let mut dom = b.dom.borrow_mut();
        let id = valid(&ctx, &dom, id)?;
        dom.set_text_content(id, &text);
        s.check_nodes(&ctx, &dom)
    });
    native!("name", |ctx: Ctx<'js>,
                     h: H<'js>,
                     id: u32|
     -> rquickjs::Result<String> {
        let b = h.borrow();
        let dom = b.dom.borrow();
        let id = valid(&ctx, &dom, id)?;
        Ok(match &dom.node(id).data {
            NodeData::Element(e) => e.local_name().to_string(),
            NodeData::Doctype { name } => name.to_string(),
            _ => String::new(),
        })
    });
    native!("isHtml", |ctx: Ctx<'js>,
                       h: H<'js>,
                       id: u32|
     -> rquickjs::Result<bool> {
        let b = h.borrow();
        let dom = b.dom.borrow();
        let id = valid(&ctx, &dom, id)?;
        Ok(dom.element(id).is_some_and(|e| e.is_html()))
    });
    native!("ns", |ctx: Ctx<'js>,
                   h: H<'js>,
                   id: u32|
     -> rquickjs::Result<Value<'js>> {
        let b = h.borrow();
        let dom = b.dom.borrow();
        let id = valid(&ctx, &dom, id)?;
        null_or(&ctx, dom.element(id).map(|e| &**e.ns()))
    });
    native!("attr", |ctx: Ctx<'js>,
                     h: H<'js>,
                     id: u32,
                     name: String|
     -> rquickjs::Result<Value<'js>> {
        let b = h.borrow();
        let dom = b.dom.borrow();
        let id = valid(&ctx, &dom, id)?;
        null_or(&ctx, dom.element(id).and_then(|e| e.attr(&name)))
    });
    native!("attrs", |ctx: Ctx<'js>,
                      h: H<'js>,
                      id: u32|
     -> rquickjs::Result<Vec<String>> {
        let b = h.borrow();
        let dom = b.dom.borrow();
        let id = valid(&ctx, &dom, id)?;
        let mut out = Vec::new();
        if let Some(e) = dom.element(id) {
            for a in e.attrs.iter() {
                out.push(match a.prefix() {
                    Some(p) => format!("{p}:{}", a.local_name()),
                    None => a.local_name().to_string(),
                });
                out.push(a.value.to_string());
            }
        }
        Ok(out)
    });
    native!("setAttr", |ctx: Ctx<'js>,
                        h: H<'js>,
                        id: u32,
                        name: String,
                        value: String|
     -> rquickjs::Result<()> {
        let b = h.borrow();
        let mut dom = b.dom.borrow_mut();
        let id = valid(&ctx, &dom, id)?;
        dom.set_attr(id, &name, &value);
        Ok(())
    });
    native!("removeAttr", |ctx: Ctx<'js>,
                           h: H<'js>,
                           id: u32,
                           name: String|
     -> rquickjs::Result<()> {
        let b = h.borrow();
        let mut dom = b.dom.borrow_mut();
        let id = valid(&ctx, &dom, id)?;
        dom.remove_attr(id, &name);
        Ok(())
    });
    native!("html", |ctx: Ctx<'js>,
                     h: H<'js>,
                     id: u32,
                     outer: bool|
     -> rquickjs::Result<String> {
        let b = h.borrow();
        let dom = b.dom.borrow();
        let id = valid(&ctx, &dom, id)?;
        Ok(if outer {
            dom.outer_html(id)
        } else {
            dom.inner_html(id)
        })
    });
    let s = st.clone();
    native!("setHtml", move |ctx: Ctx<'js>,
                             h: H<'js>,
                             id: u32,
                             html: String|
          -> rquickjs::Result<()> {
        s.check_size(&ctx, &html)?;
        let b = h.borrow();
        let mut dom = b.dom.borrow_mut();
        let id = valid(&ctx, &dom, id)?;
        let target = dom.template_contents(id).unwrap_or(id);
        dom.clear_children(target);
        for n in dom.parse_fragment(id, &html) {
            // Fresh parentless nodes into an element: cannot fail.
            let _ = dom.append(target, n);
        }
        s.check_nodes(&ctx, &dom)
    });
    native!("insert", |ctx: Ctx<'js>,
                       h: H<'js>,
                       parent: u32,
                       child: u32,
                       before: i32|
     -> rquickjs::Result<()> {
        let b = h.borrow();
        let mut dom = b.dom.borrow_mut();
        let parent = valid(&ctx, &dom, parent)?;
        let child = valid(&ctx, &dom, child)?;
        let before = if before < 0 {
            None
        } else {
            Some(valid(&ctx, &dom, before as u32)?)
        };
        dom.insert_before(parent, child, before)
            .map_err(|e| Exception::throw_message(&ctx, &e.to_string()))
    });
    native!("detach", |ctx: Ctx<'js>,
                       h: H<'js>,
                       id: u32|
     -> rquickjs::Result<()> {
        let b = h.borrow();
        let mut dom = b.dom.borrow_mut();
        let id = valid(&ctx, &dom, id)?;
        dom.detach(id);
        Ok(())
    });
    let s = st.clone();
    native!("clone", move |ctx: Ctx<'js>,
                           h: H<'js>,
                           id: u32,
                           deep: bool|
          -> rquickjs::Result<u32> {
        let b = h.borrow();
        let mut dom = b.dom.borrow_mut();
        let id = valid(&ctx, &dom, id)?;
        let c = dom.clone_node(id, deep);
        s.check_nodes(&ctx, &dom)?;
        Ok(c)
    });
    let s = st.clone();
    native!("import", move |ctx: Ctx<'js>,
                            dst: H<'js>,
                            src: H<'js>,
                            id: u32|
          -> rquickjs::Result<Vec<u32>> {
        if dst == src {
            return Ok(vec![id, id, id]);
        }
        let (bd, bs) = (dst.borrow(), src.borrow());
        let mut to = bd.dom.borrow_mut();
        let from = bs.dom.borrow();
        let id = valid(&ctx, &from, id)?;
        let (new, map) = to.import(&from, id);
        s.check_nodes(&ctx, &to)?;
        let mut out = vec![new];
        for (a, b) in map {
            out.push(a);
            out.push(b);
        }
        Ok(out)
    });
    native!("isAncestor", |ctx: Ctx<'js>,
                           h: H<'js>,
                           a: u32,
                           d: u32|
     -> rquickjs::Result<bool> {
        let b = h.borrow();
        let dom = b.dom.borrow();
        let (a, d) = (valid(&ctx, &dom, a)?, valid(&ctx, &dom, d)?);
        Ok(dom.is_inclusive_ancestor(a, d))
    });
    native!("compare", |ctx: Ctx<'js>,
                        h: H<'js>,
                        a: u32,
                        o: u32|
     -> rquickjs::Result<u16> {
        let b = h.borrow();
        let dom = b.dom.borrow();
        let (a, o) = (valid(&ctx, &dom, a)?, valid(&ctx, &dom, o)?);
        Ok(dom.compare_position(a, o))
    });
    let s = st.clone();
    native!("select", move |ctx: Ctx<'js>,
                            h: H<'js>,
                            root: u32,
                            sel: String,
                            limit: i32|
          -> rquickjs::Result<Vec<u32>> {
        let selector = s.selector(&ctx, &sel)?;
        let b = h.borrow();
        let dom = b.dom.borrow();
        let root = valid(&ctx, &dom, root)?;
        let limit = if limit < 0 {
            usize::MAX
        } else {
            limit as usize
        };
        Ok(dom.select(root, &selector, limit))
    });
    let s = st.clone();
    native!("matches", move |ctx: Ctx<'js>,
                             h: H<'js>,
                             id: u32,
                             sel: String|
          -> rquickjs::Result<bool> {
        let selector = s.selector(&ctx, &sel)?;
        let b = h.borrow();
        let dom = b.dom.borrow();
        let id = valid(&ctx, &dom, id)?;
        Ok(dom.matches(id, &selector, None))
    });
    native!("byTag", |ctx: Ctx<'js>,
                      h: H<'js>,
                      root: u32,
                      name: String|
     -> rquickjs::Result<Vec<u32>> {
        let b = h.borrow();
        let dom = b.dom.borrow();
        let root = valid(&ctx, &dom, root)?;
        let lower = name.to_ascii_lowercase();
        Ok(dom
            .descendants(root)
            .filter(|&d| {
                dom.element(d).is_some_and(|e| {
                    name == "*"
                        || if e.is_html() {
                            **e.local_name() == *lower
                        } else {
                            **e.local_name() == *name
                        }
                })
            })
            .collect())
    });
    native!("byClass", |ctx: Ctx<'js>,
                        h: H<'js>,
                        root: u32,
                        names: String|
     -> rquickjs::Result<Vec<u32>> {
        let b = h.borrow();
        let dom = b.dom.borrow();
        let root = valid(&ctx, &dom, root)?;
        let wanted: Vec<&str> = names.split_ascii_whitespace().collect();
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        Ok(dom
            .descendants(root)
            .filter(|&d| {
                dom.element(d)
                    .and_then(|e| e.attr("class"))
                    .is_some_and(|c| {
                        wanted
                            .iter()
                            .all(|w| c.split_ascii_whitespace().any(|x| x == *w))
                    })
            })
            .collect())
    });
    native!("byId", |ctx: Ctx<'js>,
                     h: H<'js>,
                     root: u32,
                     id: String|
     -> rquickjs::Result<i32> {
        let b = h.borrow();
        let dom = b.dom.borrow();
        let root = valid(&ctx, &dom, root)?;
        if id.is_empty() {
            return Ok(-1);
        }
        Ok(id_or(dom.descendants(root).find(|&d| {
            dom.element(d).and_then(|e| e.attr("id")) == Some(id.as_str())
        })))
    });
    native!("byAttr", |ctx: Ctx<'js>,
                       h: H<'js>,
                       root: u32,
                       name: String,
                       value: String|
     -> rquickjs::Result<Vec<u32>> {
        let b = h.borrow();
        let dom = b.dom.borrow();
        let root = valid(&ctx, &dom, root)?;
        Ok(dom
            .descendants(root)
            .filter(|&d| dom.element(d).and_then(|e| e.attr(&name)) == Some(value.as_str()))
            .collect())
    });
    let s = st.clone();
    native!("create", move |ctx: Ctx<'js>,
                            h: H<'js>,
                            kind: u32,
                            data: String|
          -> rquickjs::Result<u32> {
        let b = h.borrow();
        let mut dom = b.dom.borrow_mut();
        let id = match kind {
            1 => dom.create_element(&data),
            3 => dom.create(NodeData::Text(data.as_str().into())),
            8 => dom.create(NodeData::Comment(data.as_str().into())),
            _ => dom.create(NodeData::Fragment),
        };
        s.check_nodes(&ctx, &dom)?;
        Ok(id)
    });
    native!("template", |ctx: Ctx<'js>,
                         h: H<'js>,
                         id: u32|
     -> rquickjs::Result<i32> {
        let b = h.borrow();
        let dom = b.dom.borrow();
        let id = valid(&ctx, &dom, id)?;
        Ok(id_or(dom.template_contents(id)))
    });
    native!("docElement", |h: H<'js>| -> i32 {
        id_or(h.borrow().dom.borrow().document_element())
    });
    native!("htmlChild", |h: H<'js>, name: String| -> i32 {
        id_or(h.borrow().dom.borrow().html_child(&name))
    });
    native!("quirks", |h: H<'js>| -> bool {
        h.borrow().dom.borrow().quirks
    });
    native!("url", |ctx: Ctx<'js>,
                    input: String,
                    base: Opt<Value<'js>>|
     -> rquickjs::Result<Value<'js>> {
        let base = base
            .0
            .and_then(|b| b.as_string().and_then(|s| s.to_string().ok()));
        let parsed = match base.as_deref().map(url::Url::parse) {
            Some(Ok(b)) => b.join(&input),
            Some(Err(_)) => url::Url::parse(&input),
            None => url::Url::parse(&input),
        };
        url_parts(&ctx, parsed.ok())
    });
    native!("urlSet", |ctx: Ctx<'js>,
                       href: String,
                       part: u32,
                       v: String|
     -> rquickjs::Result<Value<'js>> {
        let Ok(mut u) = url::Url::parse(&href) else {
            return Ok(Value::new_null(ctx));
        };
        let ok = match part {
            0 => match url::Url::parse(&v) {
                Ok(n) => {
                    u = n;
                    true
                }
                Err(_) => false,
            },
            1 => u.set_scheme(v.trim_end_matches(':')).is_ok(),
            2 => u.set_username(&v).is_ok(),
            3 => u.set_password(Some(&v)).is_ok(),
            4 => {
                let (host, port) = match v.rsplit_once(':') {
                    Some((h, p)) if p.chars().all(|c| c.is_ascii_digit()) => (h, p.parse().ok()),
                    _ => (v.as_str(), None),
                };
                u.set_host(Some(host)).is_ok() && u.set_port(port).is_ok()
            }
            5 => u.set_host(Some(&v)).is_ok(),
            6 => u
                .set_port(if v.is_empty() { None } else { v.parse().ok() })
                .is_ok(),
            7 => {
                u.set_path(&v);
                true
            }
            8 => {
                let q = v.strip_prefix('?').unwrap_or(&v);
                u.set_query((!q.is_empty()).then_some(q));
                true
            }
            9 => {
                let f = v.strip_prefix('#').unwrap_or(&v);
                u.set_fragment((!f.is_empty()).then_some(f));
                true
            }
            _ => false,
        };
        url_parts(&ctx, ok.then_some(u))
    });
    native!("atob", |ctx: Ctx<'js>,
                     s: String|
     -> rquickjs::Result<String> {
        let clean: String = s.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(clean.trim_end_matches('='))
            .map_err(|_| {
                Exception::throw_message(
                    &ctx,
                    "InvalidCharacterError: atob: the string is not valid base64",
                )
            })?;
        Ok(bytes.into_iter().map(char::from).collect())
    });
    native!("btoa", |ctx: Ctx<'js>,
                     s: String|
     -> rquickjs::Result<String> {
        let mut bytes = Vec::with_capacity(s.len());
        for c in s.chars() {
            let b = u8::try_from(u32::from(c)).map_err(|_| {
                Exception::throw_message(
                    &ctx,
                    "InvalidCharacterError: btoa: the string has characters outside Latin1",
                )
            })?;
            bytes.push(b);
        }
        Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
    });
    Ok(n)
}

/// `[href, protocol, username, password, host, hostname, port, pathname, search, hash,
/// origin]` as `URL` and `location` name them, or null.
fn url_parts<'js>(ctx: &Ctx<'js>, u: Option<url::Url>) -> rquickjs::Result<Value<'js>> {
    let Some(u) = u else {
        return Ok(Value::new_null(ctx.clone()));
    };
    let host = u.host_str().unwrap_or("").to_string();
    let port = u.port().map(|p| p.to_string()).unwrap_or_default();
    let parts = vec![
        u.as_str().to_string(),
        format!("{}:", u.scheme()),
        u.username().to_string(),
        u.password().unwrap_or("").to_string(),
        if port.is_empty() {
            host.clone()
        } else {
            format!("{host}:{port}")
        },
        host,
        port,
        u.path().to_string(),
        u.query()
            .filter(|q| !q.is_empty())
            .map(|q| format!("?{q}"))
            .unwrap_or_default(),
        u.fragment()
            .filter(|f| !f.is_empty())
            .map(|f| format!("#{f}"))
            .unwrap_or_default(),
        u.origin().ascii_serialization(),
    ];
    rquickjs::IntoJs::into_js(parts, ctx)
}
