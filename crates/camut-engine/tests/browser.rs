//! Browser emulation (`browserEmulation`): the DOM, the real jQuery on parsed pages,
//! page loads and AJAX through camut.http (counted), errors naming the option, and
//! nothing new for campaigns without it. Pages come from the built-in target.

mod common;

use common::Env;

fn errors(r: &camut_engine::RunResult) -> Vec<(String, u64)> {
    r.summary
        .error_messages
        .iter()
        .map(|e| (e.message.clone(), e.count))
        .collect()
}

/// The page the jQuery cases run on.
const FIXTURE: &str = r#"<!DOCTYPE html><html><head><title>Fixture</title></head><body>
<div id="main" class="box main" data-role="page" data-max-items="5">
  <h2 class="title">Products</h2>
  <ul id="list">
    <li class="item first" data-id="1">Apple <span class="price">1.50</span></li>
    <li class="item" data-id="2">Banana <span class="price">0.25</span></li>
    <li class="item special" data-id="3">Cherry <span class="price">3.00</span></li>
    <li class="item last" data-id="4"><a href="../fruit/durian?x=1#top" rel="next">Durian</a> <span class="price">9</span></li>
  </ul>
  <p class="note">first note</p>
  <p class="note hidden">second note</p>
</div>
<form id="f" action="/submit" method="post">
  <input type="hidden" name="csrf" value="tok123">
  <input type="text" name="user" value="alice">
  <input type="password" name="pass" value="">
  <input type="checkbox" name="remember" value="yes" checked>
  <input type="checkbox" name="news" value="weekly">
  <input type="radio" name="color" value="red">
  <input type="radio" name="color" value="blue" checked>
  <select name="lang"><option value="en">English</option><option value="fr" selected>French</option></select>
  <select name="tags" multiple><option selected>a</option><option>b</option><option selected>c d</option></select>
  <textarea name="bio">Hello &amp; bye</textarea>
  <input type="text" name="off" value="x" disabled>
  <button type="submit" name="go" value="1">Go</button>
</form>
</body></html>"#;

/// `[name, function returning the actual value, expected]`: each case on a fresh page.
const JQUERY_CASES: &str = r#"[
  ['title text', function () { return $('title').text(); }, 'Fixture'],
  ['tag selector count', function () { return $('li').length; }, 4],
  ['class selector', function () { return $('li.item.special').contents().first().text().trim(); }, 'Cherry'],
  ['attribute equals', function () { return $('input[type=hidden]').val(); }, 'tok123'],
  ['attribute prefix', function () { return $('a[href^="../fruit"]').text(); }, 'Durian'],
  ['attribute value in quotes and index()', function () { return $('li[data-id="3"]').index(); }, 2],
  ['jQuery :first', function () { return $('li:first').data('id'); }, 1],
  ['child and :last-child', function () { return $('#list > li:last-child a').attr('rel'); }, 'next'],
  [':nth-child(2)', function () { return $('li:nth-child(2)').text().trim().split(' ')[0]; }, 'Banana'],
  [':checked', function () { return $('input:checked').map(function () { return this.value; }).get().join(); }, 'yes,blue'],
  [':disabled', function () { return $(':input:disabled').attr('name'); }, 'off'],
  [':contains()', function () { return $('li:contains("Banana")').data('id'); }, 2],
  [':not()', function () { return $('p.note:not(.hidden)').text(); }, 'first note'],
  [':has()', function () { return $('li:has(a)').data('id'); }, 4],
  ['descendant vs child', function () { return $('#main span.price').length + ',' + $('#main > span').length; }, '4,0'],
  ['adjacent and general siblings', function () { return $('li.first + li').data('id') + ',' + $('li.first ~ li').length; }, '2,3'],
  ['.eq(-1) and resolved href', function () { return $('li').eq(-1).find('a').prop('href'); }, 'http://shop.test/fruit/durian?x=1#top'],
  ['parent/next/find', function () { return $('.price').first().parent().next().find('.price').text(); }, '0.25'],
  ['.closest()', function () { return $('.price').last().closest('ul').attr('id'); }, 'list'],
  ['.parents() and .siblings()', function () { return $('li.first').parents('div').attr('id') + ',' + $('li.first').siblings().length; }, 'main,3'],
  ['.children().filter().not()', function () { return $('#list').children().filter('.item').not('.first').length; }, 3],
  ['.attr set and .removeAttr', function () {
    var m = $('#main').attr('data-x', '1');
    var set = m.attr('data-x');
    m.removeAttr('data-x');
    return set + ',' + m.attr('data-x') + ',' + document.getElementById('main').hasAttribute('data-x');
  }, '1,undefined,false'],
  ['.prop checked', function () {
    var before = $('input[name=remember]').prop('checked');
    $('input[name=remember]').prop('checked', false);
    return before + ',' + $('input:checked').length + ',' + $('input[name=remember]').attr('checked');
  }, 'true,1,checked'],
  ['.val() of select, multiple select, textarea', function () {
    return $('select[name=lang]').val() + '|' + $('select[name=tags]').val().join('/') + '|' + $('textarea').val();
  }, 'fr|a/c d|Hello & bye'],
  ['.val(v) sets the property, not the attribute', function () {
    $('input[name=user]').val('bob');
    return $('input[name=user]').val() + ',' + $('input[name=user]').attr('value');
  }, 'bob,alice'],
  ['.serialize()', function () { return $('#f').serialize(); },
    'csrf=tok123&user=alice&pass=&remember=yes&color=blue&lang=fr&tags=a&tags=c%20d&bio=Hello%20%26%20bye'],
  ['.serializeArray()', function () { return $('#f').serializeArray().map(function (p) { return p.name; }).join(); },
    'csrf,user,pass,remember,color,lang,tags,tags,bio'],
  ['$.each over arrays and objects', function () {
    var out = [];
    $.each([10, 20], function (i, v) { out.push(i + ':' + v); });
    $.each({ a: 1, b: 2 }, function (k, v) { out.push(k + '=' + v); });
    return out.join(' ');
  }, '0:10 1:20 a=1 b=2'],
  ['.each with index', function () {
    var ids = [];
    $('li').each(function (i) { ids.push(i + '-' + $(this).data('id')); });
    return ids.join();
  }, '0-1,1-2,2-3,3-4'],
  ['$.map flattens and drops null', function () { return $.map([1, 2, 3], function (x) { return x === 2 ? null : [x, x * 10]; }).join(); }, '1,10,3,30'],
  ['$.extend deep', function () { return JSON.stringify($.extend(true, { a: { b: 1 } }, { a: { c: 2 } }, { d: [1] })); }, '{"a":{"b":1,"c":2},"d":[1]}'],
  ['$.param', function () { return $.param({ a: [1, 2], b: 'x y', c: { d: 1 } }); }, 'a%5B%5D=1&a%5B%5D=2&b=x%20y&c%5Bd%5D=1'],
  ['.data() converts data-* values', function () { return $('#main').data('maxItems') + 1; }, 6],
  ['.on() and .trigger() with extra parameters', function () {
    var got = [];
    $('#main').on('custom.ns', function (e, a, b) { got.push(e.type + ':' + a + b + ':' + e.namespace); });
    $('#main').trigger('custom', ['x', 'y']);
    $('#main').off('.ns').trigger('custom');
    return got.join();
  }, 'custom:xy:'],
  ['.trigger(click) bubbles to delegated handlers', function () {
    var got = [];
    $('#list').on('click', 'li', function () { got.push('li' + $(this).data('id')); });
    $(document).on('click', function () { got.push('doc'); });
    $('li').eq(2).trigger('click');
    return got.join();
  }, 'li3,doc'],
  ['native click() reaches jQuery handlers', function () {
    var got = [];
    $('#list').on('click', 'li', function (e) { got.push(this.dataset.id + e.type + e.isTrigger); });
    $('li')[1].click();
    return got.join();
  }, '2clickundefined'],
  ['click() on a checkbox toggles it and fires change', function () {
    var changed = 0;
    $('input[name=news]').on('change', function () { changed++; });
    $('input[name=news]')[0].click();
    return $('input[name=news]').prop('checked') + ',' + changed + ',' + $('#f').serialize().indexOf('news=weekly');
  }, 'true,1,42'],
  ['clicking the submit button fires submit, which a handler cancels', function () {
    var n = 0;
    $('#f').on('submit', function (e) { e.preventDefault(); n++; });
    $('button[type=submit]')[0].click();
    $('#f').trigger('submit');
    return n;
  }, 2],
  ['classes', function () {
    var m = $('#main').addClass('a b').removeClass('box').toggleClass('main');
    return m.attr('class') + '|' + m.hasClass('a') + '|' + document.getElementById('main').classList.contains('b');
  }, 'a b|true|true'],
  ['.append(html), .html(), .remove()', function () {
    $('#list').append('<li class="item">Elder <b>berry</b></li>');
    var n = $('li').length, last = $('li').last().html();
    $('li.special').remove();
    return n + '|' + last + '|' + $('li').length + '|' + $('#list').children().length;
  }, '5|Elder <b>berry</b>|4|4'],
  ['$(html) builds detached nodes', function () { return $('<div><p>a</p><p>b</p></div>').find('p').length + $('<p>x</p>').parent().length; }, 2],
  ['.text() escapes in .html()', function () { return $('h2').text('x<y & z').html(); }, 'x&lt;y &amp; z'],
  ['.css() writes the style attribute', function () { $('h2').css('color', 'red').hide(); return $('h2').attr('style'); }, 'color: red; display: none;'],
  ['.is() and .filter(function)', function () {
    return $('li').filter(function () { return $(this).data('id') > 2; }).length + ',' + $('li.first').is('.item') + ',' + $('li.first').is(':last-child');
  }, '2,true,false'],
]"#;

#[test]
fn jquery_works_on_parsed_pages() {
    let env = Env::new();
    let src = format!(
        "exports.campaign = {{ id: 't', users: 1, iterations: 1, browserEmulation: true }};\n\
         var FIXTURE = {fixture};\n\
         exports.test = function (done) {{\n\
           history.replaceState(null, '', 'http://shop.test/shop/index.html');\n\
           var cases = {cases};\n\
           var failed = [];\n\
           cases.forEach(function (c) {{\n\
             document.open(); document.write(FIXTURE); document.close();\n\
             var got;\n\
             try {{ got = c[1](); }} catch (e) {{ got = 'threw ' + e + ' ' + e.stack; }}\n\
             if (got === c[2]) console.log('ok ' + c[0]);\n\
             else failed.push(c[0] + ': got ' + JSON.stringify(got) + ', want ' + JSON.stringify(c[2]));\n\
           }});\n\
           if (failed.length) throw new Error(failed.join('\\n'));\n\
           console.log('version ' + $.fn.jquery + ' ' + (window.jQuery === $) + ' ' + (this === window));\n\
           done();\n\
         }};\n",
        fixture = serde_json::to_string(FIXTURE).unwrap(),
        cases = JQUERY_CASES,
    );
    let (r, capture) = env.run(&src, 1);
    let lines = capture.lines();
    let e = errors(&r);
    assert!(
        e.is_empty(),
        "{}",
        e.first().map(|x| x.0.as_str()).unwrap_or("")
    );
    let ok = lines.iter().filter(|l| l.starts_with("ok ")).count();
    assert_eq!(ok, JQUERY_CASES.matches("\n  ['").count(), "{lines:?}");
    assert!(ok >= 30);
    assert!(
        lines.contains(&"version 3.7.1 true true".to_string()),
        "{lines:?}"
    );
    assert_eq!(r.summary.iterations.completed, 1);
}

#[test]
fn malformed_html_parses_as_browsers_do() {
    let env = Env::new();
    let src = "exports.campaign = { id: 't', users: 1, iterations: 1, browserEmulation: true };\n\
               exports.test = function (done) {\n\
                 var d = new DOMParser().parseFromString('<title>x</title><p>a<p>b</span><ul><li>1<li>2</ul><table><td>c</table></div><b><i>d</b>e</i>', 'text/html');\n\
                 console.log(d.body.innerHTML);\n\
                 console.log(d.head.outerHTML + ' ' + d.title + ' ' + d.querySelectorAll('li').length);\n\
                 console.log(typeof d.defaultView + ' ' + (d.querySelector('p').ownerDocument === d));\n\
                 done();\n\
               };\n";
    let (r, capture) = env.run(src, 1);
    assert!(errors(&r).is_empty(), "{:?}", errors(&r));
    assert_eq!(
        capture.lines(),
        vec![
            "<p>a</p><p>b</p><ul><li>1</li><li>2</li></ul><table><tbody><tr><td>c</td></tr></tbody></table><b><i>d</i></b><i>e</i>",
            "<head><title>x</title></head> x 2",
            "object true",
        ]
    );
}

#[test]
fn dom_api_events_forms_and_window_parts() {
    let env = Env::new();
    let src = r#"exports.campaign = { id: 't', users: 2, iterations: 2, browserEmulation: { userAgent: 'UA/1' } };
exports.test = function (done) {
  document.body.innerHTML = '<div id="a" data-user-name="x"><button>b</button><input name="q"></div>';
  var a = document.getElementById('a'), order = [];
  a.addEventListener('click', function (e) { order.push('a-bubble:' + e.eventPhase); });
  a.addEventListener('click', function () { order.push('a-capture'); }, true);
  document.addEventListener('click', function (e) { order.push('doc:' + e.target.tagName); });
  window.addEventListener('click', function () { order.push('window'); });
  a.querySelector('button').addEventListener('click', function (e) { order.push('target'); }, { once: true });
  a.querySelector('button').click();
  a.querySelector('button').dispatchEvent(new CustomEvent('click', { bubbles: false }));
  a.dataset.role = 'main';
  var checks = [
    order.join(' '),
    a.dataset.userName + a.getAttribute('data-role') + Object.keys(a.dataset).join('+'),
    navigator.userAgent,
    btoa('hé?') + ' ' + atob('aOk/'),
    new URL('../b?x=1#h', 'http://h.test:81/a/c').href,
    new URLSearchParams('a=1&b=x+y&a=2').getAll('a').join() + new URLSearchParams({ q: 'a b&c' }).toString(),
    String(localStorage.getItem('n')),
    document.querySelectorAll('div > *').length + ':' + a.children.length + ':' + a.childNodes[0].nodeName,
    a.outerHTML.length > 40,
    typeof setTimeout + typeof XMLHttpRequest + typeof fetch + typeof Event + (location.href),
  ];
  localStorage.setItem('n', String(camut.vu.iteration));
  console.log(checks.join(' | '));
  done();
};
"#;
    let (r, capture) = env.run(src, 1);
    assert!(errors(&r).is_empty(), "{:?}", errors(&r));
    let lines = capture.lines();
    assert_eq!(lines.len(), 4);
    let first = "a-capture target a-bubble:3 doc:BUTTON window a-capture | xmainuserName+role | UA/1 | aOk/ hé? | http://h.test:81/b?x=1#h | 1,2q=a+b%26c";
    assert_eq!(
        lines.iter().filter(|l| l.starts_with(first)).count(),
        4,
        "{lines:?}"
    );
    // localStorage is per VU and kept across its iterations.
    assert_eq!(lines.iter().filter(|l| l.contains("| null |")).count(), 2);
    assert_eq!(lines.iter().filter(|l| l.contains("| 0 |")).count(), 2);
    assert!(
        lines[0].ends_with("| 2:2:BUTTON | true | functionfunctionfunctionfunctionabout:blank"),
        "{lines:?}"
    );
}

#[test]
fn vus_of_a_thread_share_the_dom_classes_and_nothing_of_their_state() {
    let env = Env::new();
    // Three VUs on one thread, each waiting between its writes and its reads so that
    // the others run in between.
    let src = r#"exports.campaign = { id: 't', users: 3, iterations: 2, browserEmulation: true };
exports.test = function (done) {
  var me = 'vu' + camut.vu.id + '-' + camut.vu.iteration;
  history.pushState({ me: me }, '', 'http://h.test/' + me);
  document.body.innerHTML = '<p>' + me + '</p>';
  document.cookie = 'who=' + me;
  sessionStorage.setItem('me', me);
  var text = new Text(me), frag = new DocumentFragment(), parsed = new DOMParser().parseFromString('<b>x</b>', 'text/html');
  var xhr = new XMLHttpRequest(), clicked = [];
  window.addEventListener('click', function () { clicked.push(me); });
  setTimeout(function () {
    document.querySelector('p').click();
    console.log([
      me,
      location.href, document.URL, location.pathname, history.state.me,
      document.querySelector('p').textContent, text.data, sessionStorage.getItem('me'), clicked.join('+'), document.cookie,
      document.location === location, document.defaultView === window, text.ownerDocument === document,
      frag.ownerDocument === document, parsed.defaultView === null, parsed.URL === location.href,
      xhr instanceof XMLHttpRequest, xhr.readyState === XMLHttpRequest.UNSENT, typeof JSON.stringify(xhr) === 'string',
      text instanceof Text, document.body instanceof HTMLElement, Object.getPrototypeOf(location) === Location.prototype,
    ].join(' '));
    done();
  }, 20);
};
"#;
    let (r, capture) = env.run(src, 1);
    assert!(errors(&r).is_empty(), "{:?}", errors(&r));
    let lines = capture.lines();
    assert_eq!(lines.len(), 6, "{lines:?}");
    let mut seen = Vec::new();
    for line in &lines {
        let f: Vec<&str> = line.split(' ').collect();
        let me = f[0];
        let url = format!("http://h.test/{me}");
        let path = format!("/{me}");
        let cookie = format!("who={me}");
        let want = [&url, &url, &path, me, me, me, me, me, &cookie];
        assert_eq!(&f[1..10], &want[..], "{line}");
        assert!(f[10..].iter().all(|&b| b == "true"), "{line}");
        seen.push(me.to_string());
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 6, "{seen:?}");
}

#[test]
fn page_loads_ajax_and_fetch_go_through_camut_http_and_are_counted() {
    let env = Env::new();
    let src = r#"exports.campaign = { id: 't', users: 3, iterations: 2, browserEmulation: true };
exports.test = async function () {
  var base = camut.env.TARGET;
  var doc = await camut.browser.load(base + '/site/login', { operation: 'page' });
  var form = $('#login');
  form.find('[name=user]').val('u' + camut.vu.id);
  form.find('[name=password]').val('secret');
  var page = await $.post({ url: form.attr('action'), data: form.serialize(), operation: 'post' });
  if (page.indexOf('Welcome') < 0) throw new Error('not signed in: ' + page);
  var profile = await $.getJSON(base + '/site/api/profile');
  if (profile.user !== 'u' + camut.vu.id) throw new Error('profile ' + JSON.stringify(profile));
  var r = await fetch('/site/api/profile', { operation: 'fetch' });
  var body = await r.json();
  if (!r.ok || body.orders !== 3 || doc !== document) throw new Error('fetch ' + r.status);
  var x = await new Promise(function (ok, fail) {
    var xhr = new XMLHttpRequest();
    xhr.open('GET', '/site/orders');
    xhr.operation = 'xhr';
    xhr.onload = function () { ok(xhr.status + ' ' + xhr.getResponseHeader('Content-Type')); };
    xhr.onerror = fail;
    xhr.send();
  });
  if (x !== '200 text/html; charset=utf-8') throw new Error('xhr ' + x);
  var gone = await fetch('/site/nothing');
  if (gone.status !== 404 || gone.ok) throw new Error('404 expected');
};
"#;
    let (r, _) = env.run(src, 1);
    let s = &r.summary;
    assert_eq!(s.iterations.completed, 6, "{:?}", errors(&r));
    let op = |name: &str| {
        s.operations
            .iter()
            .find(|o| o.operation == name)
            .map(|o| (o.requests, o.errors))
    };
    assert_eq!(op("page"), Some((6, 0)));
    // Each hop of a redirect is a request: the POST and the GET of its 303.
    assert_eq!(op("post"), Some((12, 0)));
    assert_eq!(op("GET /site/api/profile"), Some((6, 0)));
    assert_eq!(op("fetch"), Some((6, 0)));
    assert_eq!(op("xhr"), Some((6, 0)));
    assert_eq!(op("GET /site/nothing"), Some((6, 6)));
    assert_eq!(s.requests, 42);
    assert_eq!(env.target.served(), 42);
    assert_eq!(env.target.served_path("site.logins"), 6);
}

#[test]
fn the_example_signs_in_and_follows_the_link() {
    let env = Env::new();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/browser.js");
    let src = std::fs::read_to_string(path).unwrap();
    let (r, _) = env.run(&src, 2);
    let s = &r.summary;
    let runs = 5 * 4;
    assert_eq!(
        (s.iterations.completed, s.iterations.failed),
        (runs, 0),
        "{:?}",
        errors(&r)
    );
    assert_eq!(env.target.served_path("site.csrf.issued"), runs);
    assert_eq!(env.target.served_path("site.logins"), runs);
    assert_eq!(env.target.served_path("site.csrf.rejected"), 0);
    assert_eq!(env.target.served_path("/site/login"), 2 * runs);
    assert_eq!(env.target.served_path("/site/account"), runs);
    assert_eq!(env.target.served_path("/site/orders"), runs);
    // The sign-in is two requests: the POST and the GET of the 303 it answers.
    assert_eq!(s.requests, 4 * runs);
    let mut ops: Vec<(&str, u64)> = s
        .operations
        .iter()
        .map(|o| (o.operation.as_str(), o.requests))
        .collect();
    ops.sort();
    assert_eq!(
        ops,
        vec![
            ("login page", runs),
            ("orders", runs),
            ("sign in", 2 * runs)
        ]
    );
}

#[test]
fn a_page_script_that_throws_fails_the_iteration_naming_the_option() {
    let env = Env::new();
    let src = "exports.campaign = { id: 't', users: 1, iterations: 3, browserEmulation: { runScripts: true } };\n\
               exports.test = async function () {\n\
                 if (camut.vu.iteration === 1) {\n\
                   await camut.browser.load(camut.env.TARGET + '/site/login');\n\
                   if (window.pageScriptRan !== true) throw new Error('inline script did not run');\n\
                   return;\n\
                 }\n\
                 await camut.browser.load(camut.env.TARGET + '/site/broken');\n\
               };\n";
    let (r, _) = env.run(src, 1);
    let s = &r.summary;
    let e = &s.error_messages;
    assert_eq!(
        (s.iterations.completed, s.iterations.failed),
        (1, 2),
        "{e:?}"
    );
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].count, 2);
    assert!(
        e[0].message.contains("page script 2 of")
            && e[0].message.contains("browserEmulation.runScripts is true")
            && e[0].message.contains("notAFunction"),
        "{e:?}"
    );
    assert!(
        e[0].stack.as_deref().unwrap_or("").contains("<script>"),
        "{e:?}"
    );
}

#[test]
fn scripts_do_not_run_by_default() {
    let env = Env::new();
    let src = "exports.campaign = { id: 't', users: 1, iterations: 1, browserEmulation: true };\n\
               exports.test = async function () {\n\
                 await camut.browser.load(camut.env.TARGET + '/site/broken');\n\
                 console.log(typeof window.beforeBroken + ' ' + document.scripts.length + ' ' + location.pathname);\n\
               };\n";
    let (r, capture) = env.run(src, 1);
    assert!(errors(&r).is_empty(), "{:?}", errors(&r));
    assert_eq!(capture.lines(), vec!["undefined 2 /site/broken"]);
}

#[test]
fn without_the_option_nothing_changes_and_document_names_the_option() {
    let env = Env::new();
    let src = "exports.campaign = { id: 't', users: 1, iterations: 2 };\n\
               exports.test = function (done) {\n\
                 console.log(Object.getOwnPropertyNames(globalThis).filter(function (k) {\n\
                   return ['document', '$', 'jQuery', 'navigator', 'location', 'XMLHttpRequest', 'fetch', 'DOMParser', 'Proxy'].indexOf(k) >= 0;\n\
                 }).join() + '|' + JSON.stringify(window) + '|' + (typeof camut.browser));\n\
                 if (camut.vu.iteration === 1) $('title');\n\
                 document.title;\n\
               };\n";
    let (r, capture) = env.run(src, 1);
    assert_eq!(capture.lines(), vec!["|{}|undefined", "|{}|undefined"]);
    let e = errors(&r);
    assert_eq!(e.len(), 2, "{e:?}");
    for (m, n) in &e {
        assert_eq!(*n, 1);
        assert!(
            m.ends_with("exists only with browser emulation; set the campaign option `browserEmulation: true`"),
            "{m}"
        );
    }
    assert!(e
        .iter()
        .any(|(m, _)| m.starts_with("ReferenceError: document is not defined")));
    assert!(e
        .iter()
        .any(|(m, _)| m.starts_with("ReferenceError: $ is not defined")));
}

#[test]
fn bad_settings_are_refused_with_their_name() {
    for (opt, want) in [
        (
            "'yes'",
            "campaign option `browserEmulation` must be true, false or an object",
        ),
        (
            "{ runScript: true }",
            "campaign option `browserEmulation.runScript` is not known",
        ),
        (
            "{ userAgent: 3 }",
            "campaign option `browserEmulation.userAgent` must be a non-empty string",
        ),
        (
            "{ maxDocumentBytes: 10 }",
            "campaign option `browserEmulation.maxDocumentBytes` must be at least 1024",
        ),
    ] {
        let src = format!(
            "exports.campaign = {{ id: 't', users: 1, iterations: 1, browserEmulation: {opt} }};\n\
             exports.test = function (done) {{ done(); }};\n"
        );
        let e = camut_engine::Campaign::from_source("t.js", &src)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with(want), "{e}");
    }
}

#[test]
fn documents_over_the_size_limit_fail_naming_the_setting() {
    let env = Env::new();
    let src = "exports.campaign = { id: 't', users: 1, iterations: 1, browserEmulation: { maxDocumentBytes: 2048 } };\n\
               exports.test = async function () {\n\
                 await camut.browser.load(camut.env.TARGET + '/?bytes=5000');\n\
               };\n";
    let (r, _) = env.run(src, 1);
    let e = errors(&r);
    assert_eq!(r.summary.iterations.failed, 1);
    assert!(
        e[0].0
            .contains("5000 bytes, over browserEmulation.maxDocumentBytes (2048)"),
        "{e:?}"
    );
}
