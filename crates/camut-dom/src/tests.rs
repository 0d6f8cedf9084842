use super::*;

fn matches(dom: &Dom, sel: &str) -> usize {
    dom.select(DOCUMENT, &Selector::parse(sel).unwrap(), usize::MAX)
        .len()
}

fn first(dom: &Dom, sel: &str) -> NodeId {
    let s = Selector::parse(sel).unwrap();
    dom.select(DOCUMENT, &s, 1)[0]
}

#[test]
fn unclosed_and_stray_tags_parse_as_browsers_do() {
    let dom = Dom::parse_document(
        "<title>T</title><p>one<p>two</span><ul><li>a<li>b</ul><table><tr><td>x</table></div>end",
    );
    let body = dom.html_child("body").unwrap();
    assert_eq!(
        dom.inner_html(body),
        "<p>one</p><p>two</p><ul><li>a</li><li>b</li></ul><table><tbody><tr><td>x</td></tr></tbody></table>end"
    );
    let head = dom.html_child("head").unwrap();
    assert_eq!(dom.inner_html(head), "<title>T</title>");
}

#[test]
fn selectors_match_attributes_structure_and_state() {
    let dom = Dom::parse_document(
        r#"<form id="f"><input name="a" type="hidden" value="1"><input name="b" disabled>
           <div class="x y"><span>s1</span><span class="z">s2</span></div><a href="/l">l</a><a>n</a></form>"#,
    );
    let count = |s: &str| matches(&dom, s);
    assert_eq!(count("input[type=hidden]"), 1);
    assert_eq!(count("input[name^=a], input[name$=b]"), 2);
    assert_eq!(count("form > input"), 2);
    assert_eq!(count("div.x.y span"), 2);
    assert_eq!(count("span + span.z"), 1);
    assert_eq!(count("input ~ a"), 2);
    assert_eq!(count("span:first-child"), 1);
    assert_eq!(count("span:nth-child(2)"), 1);
    assert_eq!(count(":disabled"), 1);
    assert_eq!(count("input:enabled"), 1);
    assert_eq!(count("a:any-link"), 1);
    assert_eq!(count("div:has(.z)"), 1);
    assert_eq!(count("span:not(.z)"), 1);
    assert!(Selector::parse("input:checked").is_err());
    assert!(Selector::parse("a[").is_err());
}

#[test]
fn tree_changes_and_serialization() {
    let mut dom = Dom::parse_document("<div id=d>a<b>b</b></div>");
    let d = first(&dom, "#d");
    let nodes = dom.parse_fragment(d, "<i>x &amp; y</i><br>tail");
    assert_eq!(nodes.len(), 3);
    for n in &nodes {
        dom.append(d, *n).unwrap();
    }
    assert_eq!(dom.inner_html(d), "a<b>b</b><i>x &amp; y</i><br>tail");
    assert_eq!(dom.text_content(d), "abx & ytail");
    let b = first(&dom, "b");
    dom.set_attr(b, "title", "q\"uote");
    assert_eq!(dom.outer_html(b), "<b title=\"q&quot;uote\">b</b>");
    assert_eq!(dom.insert_before(b, d, None), Err(TreeError::Hierarchy));
    let copy = dom.clone_node(d, true);
    assert_eq!(dom.outer_html(copy), dom.outer_html(d));
    dom.set_text_content(d, "<new>");
    assert_eq!(dom.inner_html(d), "&lt;new&gt;");
    assert_eq!(dom.compare_position(d, copy) & 1, 1);
    let body = dom.html_child("body").unwrap();
    assert_eq!(dom.compare_position(body, d), 16 | 4);
    assert_eq!(dom.compare_position(d, body), 8 | 2);
}

#[test]
fn import_copies_between_documents() {
    let src = Dom::parse_document("<ul><li>1</li><li>2</li></ul>");
    let mut dst = Dom::parse_document("<body></body>");
    let ul = first(&src, "ul");
    let (new, map) = dst.import(&src, ul);
    assert_eq!(map.len(), 5);
    let body = dst.html_child("body").unwrap();
    dst.append(body, new).unwrap();
    assert_eq!(dst.inner_html(body), "<ul><li>1</li><li>2</li></ul>");
}

#[test]
fn a_parsed_page_keeps_no_slice_of_its_source() {
    let long = "x".repeat(40);
    let page =
        format!("<!-- {long} --><p title='{long}' data-a=\"{long}\">{long}<b>{long}</b></p>");
    let mut dom = Dom::parse_document(&page);
    let p = first(&dom, "p");
    let added = dom.parse_fragment(p, &format!("<i class='{long}'>{long}</i>"));
    assert_eq!(added.len(), 1);
    let mut strings = 0;
    for id in 0..dom.len() as NodeId {
        let texts: Vec<&StrTendril> = match &dom.node(id).data {
            NodeData::Text(t) | NodeData::Comment(t) => vec![t],
            NodeData::Element(e) => e.attrs.iter().map(|a| &a.value).collect(),
            _ => vec![],
        };
        for t in texts {
            assert!(
                !t.is_shared(),
                "node {id}: {:?} still shares the page's buffer",
                &**t
            );
            strings += 1;
        }
    }
    // The comment, two attributes, two texts, then the fragment's attribute and text.
    assert!(strings >= 7, "{strings}");
}

#[test]
fn a_node_takes_64_bytes_of_its_arena() {
    // Five links and the data, an element's being a 16-byte name and its attributes.
    assert_eq!(std::mem::size_of::<Node>(), 64);
}

#[test]
fn a_page_s_arena_grows_by_little_when_a_script_adds_nodes() {
    let page: String = (0..500)
        .map(|i| format!("<li class=i{i}><a href=/p/{i}>item {i}</a></li>"))
        .collect();
    let mut dom = Dom::parse_document(&format!("<ul>{page}</ul>"));
    let parsed = dom.heap_size();
    let nodes = dom.len();
    assert!(nodes > 1500, "{nodes}");
    // What jQuery does at start: a few elements for its support tests.
    for _ in 0..5 {
        dom.create_element("div");
    }
    let grown = dom.heap_size();
    assert!(
        grown * 100 < parsed * 115,
        "{nodes} nodes: {parsed} bytes after the parse, {grown} with 5 more"
    );
}

#[test]
fn a_template_s_copies_have_contents_of_their_own() {
    let src = Dom::parse_document("<template id=t><p>in</p></template>");
    let t = first(&src, "template");
    let contents = |dom: &Dom, id: NodeId| dom.template_contents(id).unwrap();
    assert_eq!(src.inner_html(contents(&src, t)), "<p>in</p>");

    // Into a bigger document, where the other arena's ids name other nodes.
    let mut dst = Dom::parse_document(&"<div>x</div>".repeat(20));
    let (new, map) = dst.import(&src, t);
    let c = contents(&dst, new);
    assert_eq!(dst.inner_html(c), "<p>in</p>");
    assert!(map
        .iter()
        .any(|&(old, copy)| old == contents(&src, t) && copy == c));

    let mut dom = src;
    let deep = dom.clone_node(t, true);
    let shallow = dom.clone_node(t, false);
    assert_ne!(contents(&dom, deep), contents(&dom, t));
    assert_eq!(dom.inner_html(contents(&dom, deep)), "<p>in</p>");
    assert_eq!(dom.inner_html(contents(&dom, shallow)), "");
    dom.set_text_content(contents(&dom, deep), "changed");
    assert_eq!(dom.inner_html(contents(&dom, t)), "<p>in</p>");
}

#[test]
fn foreign_elements_and_prefixed_attributes_keep_their_names() {
    let dom = Dom::parse_document(
        r##"<p>a</p><svg viewBox="0 0 1 1"><use xlink:href="#c"/><circle r=1 /></svg><p>b</p>"##,
    );
    let svg = first(&dom, "svg");
    assert_eq!(
        dom.outer_html(svg),
        r##"<svg viewBox="0 0 1 1"><use xlink:href="#c"></use><circle r="1"></circle></svg>"##
    );
    let e = dom.element(svg).unwrap();
    assert!(!e.is_html());
    assert_eq!(&**e.ns(), "http://www.w3.org/2000/svg");
    let use_ = dom.element(first(&dom, "use")).unwrap();
    assert_eq!(&**use_.attrs[0].ns(), "http://www.w3.org/1999/xlink");
    let count = |s: &str| matches(&dom, s);
    assert_eq!(count("svg > circle[r='1']"), 1);
    assert_eq!(count("p:nth-of-type(2)"), 1);
    assert_eq!(count("circle:first-of-type"), 1);
}
