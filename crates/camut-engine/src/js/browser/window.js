// The browser-like window of a virtual user (campaign option `browserEmulation`).
//
// Evaluated once per worker, and called once per worker: the classes, their prototypes
// and every method and accessor below are made then, and shared by all the worker's
// VUs. The function it yields is called once per VU with that VU's global object and
// makes only what the VU owns: its window's globals, its document, location, history
// and storages, and the few constructors that need its document or its `camut`. The
// documents themselves live in Rust (`N`, the natives: an arena per document, html5ever
// parsing, Servo's selector matching); this file makes the JavaScript objects a page
// script and jQuery expect, each node's wrapper made only when a script first touches
// the node, then kept so that identity holds.
//
// Shared code finds its VU through what it is called on: a node's document (`__d`),
// the VU record of a main document (`__vu`: its window, `camut`, location), an
// XMLHttpRequest's `__vu`. It runs in the worker's shared realm, so it never names a
// VU global directly.
(function (N, settings, jqueryFactory) {
  'use strict';

  function domError(name, message) {
    var e = new Error(message);
    e.name = name;
    return e;
  }
  function illegal() {
    throw new TypeError('Illegal constructor');
  }
  function accessors(proto, map) {
    Object.keys(map).forEach(function (k) {
      var d = map[k];
      Object.defineProperty(proto, k, {
        get: d.get || d,
        set: d.set,
        configurable: true,
        enumerable: true,
      });
    });
  }
  function methods(proto, map) {
    Object.keys(map).forEach(function (k) {
      Object.defineProperty(proto, k, { value: map[k], writable: true, configurable: true });
    });
  }

  // ---- events -------------------------------------------------------------------
  function Event(type, init) {
    if (arguments.length < 1) throw new TypeError("Event: 1 argument required");
    init = init || {};
    this.type = String(type);
    this.bubbles = !!init.bubbles;
    this.cancelable = !!init.cancelable;
    this.composed = !!init.composed;
    this.defaultPrevented = false;
    this.target = null;
    this.currentTarget = null;
    this.eventPhase = 0;
    this.isTrusted = false;
    this.timeStamp = Date.now();
    this._stop = false;
    this._stopNow = false;
  }
  methods(Event.prototype, {
    preventDefault: function () {
      if (this.cancelable) this.defaultPrevented = true;
    },
    stopPropagation: function () {
      this._stop = true;
    },
    stopImmediatePropagation: function () {
      this._stop = this._stopNow = true;
    },
    composedPath: function () {
      return this._path ? this._path.slice() : [];
    },
  });
  Event.NONE = 0;
  Event.CAPTURING_PHASE = 1;
  Event.AT_TARGET = 2;
  Event.BUBBLING_PHASE = 3;
  function subEvent(name, fields) {
    var C = function (type, init) {
      Event.call(this, type, init);
      init = init || {};
      for (var i = 0; i < fields.length; i++) {
        var f = fields[i];
        this[f[0]] = init[f[0]] !== undefined ? init[f[0]] : f[1];
      }
    };
    C.prototype = Object.create(Event.prototype, { constructor: { value: C, writable: true, configurable: true } });
    Object.defineProperty(C, 'name', { value: name });
    return C;
  }
  var CustomEvent = subEvent('CustomEvent', [['detail', null]]);
  var UIEvent = subEvent('UIEvent', [['view', null], ['detail', 0]]);
  var MOUSE = [['view', null], ['detail', 0], ['button', 0], ['buttons', 0], ['clientX', 0], ['clientY', 0],
    ['screenX', 0], ['screenY', 0], ['pageX', 0], ['pageY', 0], ['ctrlKey', false], ['shiftKey', false],
    ['altKey', false], ['metaKey', false], ['relatedTarget', null]];
  var MouseEvent = subEvent('MouseEvent', MOUSE);
  var KeyboardEvent = subEvent('KeyboardEvent', [['key', ''], ['code', ''], ['keyCode', 0], ['charCode', 0],
    ['which', 0], ['ctrlKey', false], ['shiftKey', false], ['altKey', false], ['metaKey', false], ['repeat', false]]);
  var FocusEvent = subEvent('FocusEvent', [['relatedTarget', null]]);

  function EventTarget() {}
  function listenersOf(t, type) {
    var all = t.__l || (Object.defineProperty(t, '__l', { value: {}, writable: true }), t.__l);
    return all[type] || (all[type] = []);
  }
  methods(EventTarget.prototype, {
    addEventListener: function (type, fn, opts) {
      if (!fn) return;
      var capture = typeof opts === 'boolean' ? opts : !!(opts && opts.capture);
      var once = !!(opts && typeof opts === 'object' && opts.once);
      var list = listenersOf(this, String(type));
      for (var i = 0; i < list.length; i++) if (list[i].fn === fn && list[i].capture === capture) return;
      list.push({ fn: fn, capture: capture, once: once });
    },
    removeEventListener: function (type, fn, opts) {
      var capture = typeof opts === 'boolean' ? opts : !!(opts && opts.capture);
      var list = listenersOf(this, String(type));
      for (var i = 0; i < list.length; i++) {
        if (list[i].fn === fn && list[i].capture === capture) {
          list[i].removed = true;
          list.splice(i, 1);
          return;
        }
      }
    },
    dispatchEvent: function (ev) {
      if (!(ev instanceof Event)) throw new TypeError("dispatchEvent: argument is not an Event");
      return dispatch(this, ev);
    },
  });

  // Calls the listeners of one target for one phase; the first error thrown is kept
  // and thrown once the dispatch is over, so that the other listeners still run.
  function invoke(t, ev, capturePhase, state) {
    var list = t.__l && t.__l[ev.type];
    ev.currentTarget = t;
    if (list && list.length) {
      list = list.slice();
      for (var i = 0; i < list.length; i++) {
        var l = list[i];
        if (l.removed) continue;
        if (ev.eventPhase !== 2 && l.capture !== capturePhase) continue;
        if (l.once) t.removeEventListener(ev.type, l.fn, l.capture);
        try {
          var r = typeof l.fn === 'function' ? l.fn.call(t, ev) : l.fn.handleEvent(ev);
          if (r === false) ev.preventDefault();
        } catch (e) {
          if (!state.error) state.error = e;
        }
        if (ev._stopNow) break;
      }
    }
    if (!capturePhase && !ev._stopNow) {
      var on = t['on' + ev.type];
      if (typeof on === 'function') {
        try {
          if (on.call(t, ev) === false) ev.preventDefault();
        } catch (e) {
          if (!state.error) state.error = e;
        }
      }
    }
  }
  function dispatch(target, ev) {
    var path = [];
    for (var n = target.parentNode; n; n = n.parentNode) path.push(n);
    var vu = path.length ? vuOf(path[path.length - 1]) : null;
    if (vu) path.push(vu.w);
    ev.target = target;
    ev._path = [target].concat(path);
    var state = { error: null };
    ev.eventPhase = 1;
    for (var i = path.length - 1; i >= 0 && !ev._stop; i--) invoke(path[i], ev, true, state);
    if (!ev._stop) {
      ev.eventPhase = 2;
      invoke(target, ev, false, state);
    }
    if (ev.bubbles) {
      ev.eventPhase = 3;
      for (var j = 0; j < path.length && !ev._stop; j++) invoke(path[j], ev, false, state);
    }
    ev.eventPhase = 0;
    ev.currentTarget = null;
    if (state.error) throw state.error;
    return !ev.defaultPrevented;
  }

  // ---- nodes --------------------------------------------------------------------
  // A wrapper holds its document (`__d`) and its id in that document's arena (`__i`);
  // the document holds the arena's handle (`__h`) and the wrappers made (`__n`).
  function Node() {
    illegal();
  }
  Node.prototype = Object.create(EventTarget.prototype);
  var NODE_CONSTS = {
    ELEMENT_NODE: 1, ATTRIBUTE_NODE: 2, TEXT_NODE: 3, CDATA_SECTION_NODE: 4, PROCESSING_INSTRUCTION_NODE: 7,
    COMMENT_NODE: 8, DOCUMENT_NODE: 9, DOCUMENT_TYPE_NODE: 10, DOCUMENT_FRAGMENT_NODE: 11,
    DOCUMENT_POSITION_DISCONNECTED: 1, DOCUMENT_POSITION_PRECEDING: 2, DOCUMENT_POSITION_FOLLOWING: 4,
    DOCUMENT_POSITION_CONTAINS: 8, DOCUMENT_POSITION_CONTAINED_BY: 16, DOCUMENT_POSITION_IMPLEMENTATION_SPECIFIC: 32,
  };
  Object.keys(NODE_CONSTS).forEach(function (k) {
    Node[k] = Node.prototype[k] = NODE_CONSTS[k];
  });
  function Element() {
    illegal();
  }
  Element.prototype = Object.create(Node.prototype);
  function HTMLElement() {
    illegal();
  }
  HTMLElement.prototype = Object.create(Element.prototype);
  function CharacterData() {
    illegal();
  }
  CharacterData.prototype = Object.create(Node.prototype);
  // `new Text()`, `new Comment()` and `new DocumentFragment()` make a node of the VU's
  // document: each VU's window has its own constructors over these prototypes.
  function Text() {
    illegal();
  }
  Text.prototype = Object.create(CharacterData.prototype);
  function Comment() {
    illegal();
  }
  Comment.prototype = Object.create(CharacterData.prototype);
  function DocumentFragment() {
    illegal();
  }
  DocumentFragment.prototype = Object.create(Node.prototype);
  function DocumentType() {
    illegal();
  }
  DocumentType.prototype = Object.create(Node.prototype);
  function ProcessingInstruction() {
    illegal();
  }
  ProcessingInstruction.prototype = Object.create(CharacterData.prototype);
  function Document() {
    return makeDocument(N.parse(''), null);
  }
  Document.prototype = Object.create(Node.prototype);
  function HTMLDocument() {
    illegal();
  }
  HTMLDocument.prototype = Document.prototype;

  var TextProto = Text.prototype, CommentProto = Comment.prototype, FragmentProto = DocumentFragment.prototype;
  Element.prototype.nodeType = 1;
  Text.prototype.nodeType = 3;
  Comment.prototype.nodeType = 8;
  Document.prototype.nodeType = 9;
  DocumentType.prototype.nodeType = 10;
  DocumentFragment.prototype.nodeType = 11;
  ProcessingInstruction.prototype.nodeType = 7;
  Text.prototype.nodeName = '#text';
  Comment.prototype.nodeName = '#comment';
  Document.prototype.nodeName = '#document';
  DocumentFragment.prototype.nodeName = '#document-fragment';

  function W(d, i) {
    this.__d = d;
    this.__i = i;
  }
  function maker(proto) {
    var C = function (d, i) {
      W.call(this, d, i);
    };
    C.prototype = proto;
    return C;
  }
  var MAKERS = {
    1: maker(HTMLElement.prototype),
    3: maker(Text.prototype),
    7: maker(ProcessingInstruction.prototype),
    8: maker(Comment.prototype),
    10: maker(DocumentType.prototype),
    11: maker(DocumentFragment.prototype),
  };

  function wrap(d, id) {
    if (id < 0) return null;
    var w = d.__n[id];
    if (w) return w;
    w = new MAKERS[N.type(d.__h, id)](d, id);
    d.__n[id] = w;
    return w;
  }
  function wrapAll(d, ids) {
    var out = new Array(ids.length);
    for (var i = 0; i < ids.length; i++) out[i] = wrap(d, ids[i]);
    return out;
  }
  function item(i) {
    return this[i] || null;
  }
  function list(arr) {
    arr.item = item;
    return arr;
  }
  function isNode(n) {
    return n instanceof Node;
  }
  function need(n, what) {
    if (!isNode(n)) throw new TypeError(what + ": parameter is not a Node");
    return n;
  }
  // Brings `node` into document `d` (copying it from another document's arena).
  function adopt(d, node) {
    if (node.__d === d) return node;
    if (node.nodeType === 9) throw domError('HierarchyRequestError', 'a document cannot be inserted');
    var old = node.__d;
    if (node.parentNode) node.parentNode.removeChild(node);
    var map = N.import(d.__h, old.__h, node.__i);
    for (var i = 1; i < map.length; i += 2) {
      var w = old.__n[map[i]];
      if (w) {
        delete old.__n[map[i]];
        w.__d = d;
        w.__i = map[i + 1];
        d.__n[w.__i] = w;
      }
    }
    return node;
  }
  function insert(parent, node, before) {
    need(node, 'insertBefore');
    adopt(parent.__d, node);
    if (before) adopt(parent.__d, before);
    N.insert(parent.__d.__h, parent.__i, node.__i, before ? before.__i : -1);
    return node;
  }
  function resolve(url, base) {
    var r = N.url(String(url), base);
    return r === null ? null : r[0];
  }
  // The VU whose main document `d` is (its window's `document`), or null.
  function vuOf(d) {
    var vu = d.__vu;
    return vu && vu.doc === d ? vu : null;
  }

  accessors(Node.prototype, {
    ownerDocument: function () {
      return this.nodeType === 9 ? null : this.__d;
    },
    parentNode: function () {
      return wrap(this.__d, N.rel(this.__d.__h, this.__i, 0));
    },
    parentElement: function () {
      var p = this.parentNode;
      return p && p.nodeType === 1 ? p : null;
    },
    firstChild: function () {
      return wrap(this.__d, N.rel(this.__d.__h, this.__i, 1));
    },
    lastChild: function () {
      return wrap(this.__d, N.rel(this.__d.__h, this.__i, 2));
    },
    previousSibling: function () {
      return wrap(this.__d, N.rel(this.__d.__h, this.__i, 3));
    },
    nextSibling: function () {
      return wrap(this.__d, N.rel(this.__d.__h, this.__i, 4));
    },
    childNodes: function () {
      return list(wrapAll(this.__d, N.kids(this.__d.__h, this.__i, false)));
    },
    isConnected: function () {
      return N.root(this.__d.__h, this.__i) === 0;
    },
    nodeValue: {
      get: function () {
        return this.nodeType === 3 || this.nodeType === 8 || this.nodeType === 7 ? N.text(this.__d.__h, this.__i) : null;
      },
      set: function (v) {
        if (this.nodeType === 3 || this.nodeType === 8 || this.nodeType === 7) N.setText(this.__d.__h, this.__i, String(v));
      },
    },
    textContent: {
      get: function () {
        return this.nodeType === 9 || this.nodeType === 10 ? null : N.text(this.__d.__h, this.__i);
      },
      set: function (v) {
        if (this.nodeType !== 9 && this.nodeType !== 10) N.setText(this.__d.__h, this.__i, v == null ? '' : String(v));
      },
    },
    baseURI: function () {
      return this.__d.URL;
    },
  });
  methods(Node.prototype, {
    appendChild: function (node) {
      return insert(this, node, null);
    },
    insertBefore: function (node, before) {
      return insert(this, node, before || null);
    },
    removeChild: function (node) {
      need(node, 'removeChild');
      if (node.parentNode !== this) throw domError('NotFoundError', 'removeChild: the node is not a child of this node');
      N.detach(this.__d.__h, node.__i);
      return node;
    },
    replaceChild: function (node, old) {
      need(old, 'replaceChild');
      if (old.parentNode !== this) throw domError('NotFoundError', 'replaceChild: the node is not a child of this node');
      if (node === old) return old;
      var next = old.nextSibling;
      this.removeChild(old);
      insert(this, node, next === node ? node.nextSibling : next);
      return old;
    },
    hasChildNodes: function () {
      return N.rel(this.__d.__h, this.__i, 1) >= 0;
    },
    cloneNode: function (deep) {
      if (this.nodeType === 9) return makeDocument(N.cloneDoc(this.__h), null);
      var c = wrap(this.__d, N.clone(this.__d.__h, this.__i, !!deep));
      copyState(this, c, !!deep);
      return c;
    },
    contains: function (other) {
      if (!other) return false;
      if (other.__d !== this.__d) return false;
      return N.isAncestor(this.__d.__h, this.__i, other.__i);
    },
    compareDocumentPosition: function (other) {
      need(other, 'compareDocumentPosition');
      if (other.__d !== this.__d) return 1 | 32 | (this.__d.__id < other.__d.__id ? 4 : 2);
      return N.compare(this.__d.__h, this.__i, other.__i);
    },
    isSameNode: function (o) {
      return this === o;
    },
    isEqualNode: function (o) {
      return !!o && o.nodeType === this.nodeType && N.html(this.__d.__h, this.__i, true) === N.html(o.__d.__h, o.__i, true);
    },
    getRootNode: function () {
      return wrap(this.__d, N.root(this.__d.__h, this.__i));
    },
    normalize: function () {},
  });
  // Form state lives on the wrappers: copy it with the clone, as browsers do.
  function copyState(from, to, deep) {
    if (from.__v !== undefined) to.__v = from.__v;
    if (from.__c !== undefined) to.__c = from.__c;
    if (from.__s !== undefined) to.__s = from.__s;
    if (deep && from.nodeType === 1) {
      var a = from.childNodes, b = to.childNodes;
      for (var i = 0; i < a.length; i++) copyState(a[i], b[i], true);
    }
  }

  // Parent-node mixin: elements, documents, fragments.
  var PARENT = {
    querySelector: function (sel) {
      var r = N.select(this.__d.__h, this.__i, String(sel), 1);
      return r.length ? wrap(this.__d, r[0]) : null;
    },
    querySelectorAll: function (sel) {
      return list(wrapAll(this.__d, N.select(this.__d.__h, this.__i, String(sel), -1)));
    },
    getElementsByTagName: function (name) {
      return list(wrapAll(this.__d, N.byTag(this.__d.__h, this.__i, String(name))));
    },
    getElementsByClassName: function (names) {
      return list(wrapAll(this.__d, N.byClass(this.__d.__h, this.__i, String(names))));
    },
    append: function () {
      for (var i = 0; i < arguments.length; i++) this.appendChild(toNode(this.__d, arguments[i]));
    },
    prepend: function () {
      var first = this.firstChild;
      for (var i = 0; i < arguments.length; i++) this.insertBefore(toNode(this.__d, arguments[i]), first);
    },
    replaceChildren: function () {
      N.setText(this.__d.__h, this.__i, '');
      this.append.apply(this, arguments);
    },
  };
  var PARENT_GETTERS = {
    children: function () {
      return list(wrapAll(this.__d, N.kids(this.__d.__h, this.__i, true)));
    },
    childElementCount: function () {
      return N.kids(this.__d.__h, this.__i, true).length;
    },
    firstElementChild: function () {
      var k = N.kids(this.__d.__h, this.__i, true);
      return k.length ? wrap(this.__d, k[0]) : null;
    },
    lastElementChild: function () {
      var k = N.kids(this.__d.__h, this.__i, true);
      return k.length ? wrap(this.__d, k[k.length - 1]) : null;
    },
  };
  [Element.prototype, Document.prototype, DocumentFragment.prototype].forEach(function (p) {
    methods(p, PARENT);
    accessors(p, PARENT_GETTERS);
  });
  function toNode(d, x) {
    return isNode(x) ? x : d.createTextNode(String(x));
  }
  function siblingElement(n, dir) {
    for (n = dir ? n.nextSibling : n.previousSibling; n; n = dir ? n.nextSibling : n.previousSibling) {
      if (n.nodeType === 1) return n;
    }
    return null;
  }
  var CHILD = {
    remove: function () {
      if (this.parentNode) this.parentNode.removeChild(this);
    },
    before: function () {
      var p = this.parentNode;
      for (var i = 0; p && i < arguments.length; i++) p.insertBefore(toNode(this.__d, arguments[i]), this);
    },
    after: function () {
      var p = this.parentNode, next = this.nextSibling;
      for (var i = 0; p && i < arguments.length; i++) p.insertBefore(toNode(this.__d, arguments[i]), next);
    },
    replaceWith: function () {
      var p = this.parentNode;
      if (!p) return;
      this.after.apply(this, arguments);
      p.removeChild(this);
    },
  };
  [Element.prototype, CharacterData.prototype, DocumentType.prototype].forEach(function (p) {
    methods(p, CHILD);
  });
  accessors(CharacterData.prototype, {
    data: {
      get: function () {
        return N.text(this.__d.__h, this.__i);
      },
      set: function (v) {
        N.setText(this.__d.__h, this.__i, String(v));
      },
    },
    length: function () {
      return this.data.length;
    },
    nextElementSibling: function () {
      return siblingElement(this, true);
    },
    previousElementSibling: function () {
      return siblingElement(this, false);
    },
  });
  methods(CharacterData.prototype, {
    appendData: function (s) {
      this.data += s;
    },
    substringData: function (o, c) {
      return this.data.substr(o, c);
    },
  });
  accessors(Text.prototype, {
    wholeText: function () {
      return this.data;
    },
  });
  accessors(DocumentType.prototype, {
    name: function () {
      return N.name(this.__d.__h, this.__i);
    },
    nodeName: function () {
      return N.name(this.__d.__h, this.__i);
    },
    publicId: function () {
      return '';
    },
    systemId: function () {
      return '';
    },
  });

  // ---- elements -----------------------------------------------------------------
  function attr(el, name) {
    return N.attr(el.__d.__h, el.__i, name);
  }
  function lname(el) {
    return el.__ln || (el.__ln = N.name(el.__d.__h, el.__i));
  }
  function Attr(el, name, value) {
    this.ownerElement = el;
    this.name = this.localName = this.nodeName = name;
    this.value = this.nodeValue = value;
    this.specified = true;
    this.namespaceURI = null;
  }
  Attr.prototype.nodeType = 2;

  accessors(Element.prototype, {
    localName: function () {
      return lname(this);
    },
    tagName: function () {
      return N.isHtml(this.__d.__h, this.__i) ? lname(this).toUpperCase() : lname(this);
    },
    nodeName: function () {
      return this.tagName;
    },
    namespaceURI: function () {
      return N.ns(this.__d.__h, this.__i);
    },
    attributes: function () {
      var a = N.attrs(this.__d.__h, this.__i), out = [];
      for (var i = 0; i < a.length; i += 2) {
        var at = new Attr(this, a[i], a[i + 1]);
        out.push(at);
        out[a[i]] = at;
      }
      out.getNamedItem = function (n) {
        for (var j = 0; j < this.length; j++) if (this[j].name === n) return this[j];
        return null;
      };
      return list(out);
    },
    innerHTML: {
      get: function () {
        return N.html(this.__d.__h, this.__i, false);
      },
      set: function (html) {
        N.setHtml(this.__d.__h, this.__i, html == null ? '' : String(html));
      },
    },
    outerHTML: {
      get: function () {
        return N.html(this.__d.__h, this.__i, true);
      },
      set: function (html) {
        var p = this.parentNode;
        if (!p) return;
        var tmp = this.__d.createElement('div');
        tmp.innerHTML = String(html);
        var kids = tmp.childNodes;
        for (var i = 0; i < kids.length; i++) p.insertBefore(kids[i], this);
        p.removeChild(this);
      },
    },
    innerText: {
      get: function () {
        return this.textContent;
      },
      set: function (v) {
        this.textContent = v;
      },
    },
    id: reflect('id'),
    className: reflect('class'),
    title: reflect('title'),
    lang: reflect('lang'),
    dir: reflect('dir'),
    slot: reflect('slot'),
    hidden: reflectBool('hidden'),
    classList: function () {
      return this.__cl || (this.__cl = new DOMTokenList(this, 'class'));
    },
    dataset: function () {
      return this.__ds || (this.__ds = makeDataset(this));
    },
    style: function () {
      return this.__st || (this.__st = makeStyle(this));
    },
    nextElementSibling: function () {
      return siblingElement(this, true);
    },
    previousElementSibling: function () {
      return siblingElement(this, false);
    },
    offsetWidth: zero, offsetHeight: zero, offsetTop: zero, offsetLeft: zero, offsetParent: function () { return null; },
    clientWidth: zero, clientHeight: zero, clientTop: zero, clientLeft: zero,
    scrollWidth: zero, scrollHeight: zero, scrollTop: zero, scrollLeft: zero,
    tabIndex: {
      get: function () {
        var v = parseInt(attr(this, 'tabindex'), 10);
        return isNaN(v) ? (/^(a|button|input|select|textarea)$/.test(lname(this)) ? 0 : -1) : v;
      },
      set: function (v) {
        this.setAttribute('tabindex', String(v));
      },
    },
  });
  function zero() {
    return 0;
  }
  function reflect(name, fallback) {
    return {
      get: function () {
        var v = attr(this, name);
        return v === null ? (fallback === undefined ? '' : fallback) : v;
      },
      set: function (v) {
        N.setAttr(this.__d.__h, this.__i, name, String(v));
      },
    };
  }
  function reflectBool(name) {
    return {
      get: function () {
        return attr(this, name) !== null;
      },
      set: function (v) {
        if (v) N.setAttr(this.__d.__h, this.__i, name, '');
        else N.removeAttr(this.__d.__h, this.__i, name);
      },
    };
  }
  function reflectUrl(name) {
    return {
      get: function () {
        var v = attr(this, name);
        if (v === null) return '';
        var r = resolve(v, this.__d.URL);
        return r === null ? v : r;
      },
      set: function (v) {
        N.setAttr(this.__d.__h, this.__i, name, String(v));
      },
    };
  }
  function attrName(name) {
    name = String(name);
    return N.isHtml(this.__d.__h, this.__i) ? name.toLowerCase() : name;
  }
  methods(Element.prototype, {
    getAttribute: function (name) {
      return attr(this, attrName.call(this, name));
    },
    getAttributeNS: function (ns, name) {
      return attr(this, String(name));
    },
    setAttribute: function (name, value) {
      name = attrName.call(this, name);
      if (!/^[^\s"'>\/=\x00-\x1f\x7f]+$/.test(name)) throw domError('InvalidCharacterError', "'" + name + "' is not a valid attribute name");
      N.setAttr(this.__d.__h, this.__i, name, String(value));
      if (name === 'style') delete this.__st;
    },
    setAttributeNS: function (ns, name, value) {
      this.setAttribute(String(name).replace(/^.*:/, ''), value);
    },
    removeAttribute: function (name) {
      N.removeAttr(this.__d.__h, this.__i, attrName.call(this, name));
      if (this.__st && attrName.call(this, name) === 'style') delete this.__st;
    },
    removeAttributeNS: function (ns, name) {
      this.removeAttribute(name);
    },
    hasAttribute: function (name) {
      return attr(this, attrName.call(this, name)) !== null;
    },
    hasAttributes: function () {
      return N.attrs(this.__d.__h, this.__i).length > 0;
    },
    getAttributeNames: function () {
      return N.attrs(this.__d.__h, this.__i).filter(function (_, i) {
        return i % 2 === 0;
      });
    },
    toggleAttribute: function (name, force) {
      var has = this.hasAttribute(name);
      if (force === undefined ? has : !force) {
        this.removeAttribute(name);
        return false;
      }
      if (!has) this.setAttribute(name, '');
      return true;
    },
    matches: function (sel) {
      return N.matches(this.__d.__h, this.__i, String(sel));
    },
    closest: function (sel) {
      for (var n = this; n && n.nodeType === 1; n = n.parentNode) if (n.matches(sel)) return n;
      return null;
    },
    insertAdjacentHTML: function (where, html) {
      var tmp = this.__d.createElement('div');
      tmp.innerHTML = String(html);
      var frag = this.__d.createDocumentFragment();
      var kids = tmp.childNodes;
      for (var i = 0; i < kids.length; i++) frag.appendChild(kids[i]);
      adjacent(this, where, frag);
    },
    insertAdjacentElement: function (where, el) {
      return adjacent(this, where, el);
    },
    insertAdjacentText: function (where, text) {
      adjacent(this, where, this.__d.createTextNode(text));
    },
    getBoundingClientRect: function () {
      return { x: 0, y: 0, top: 0, left: 0, right: 0, bottom: 0, width: 0, height: 0 };
    },
    getClientRects: function () {
      return [];
    },
    click: function () {
      click(this);
    },
    focus: function () {
      focus(this);
    },
    blur: function () {
      if (this.__d.__active === this) blur(this, null);
    },
    scrollIntoView: function () {},
  });
  Element.prototype.webkitMatchesSelector = Element.prototype.matches;
  function adjacent(el, where, node) {
    switch (String(where).toLowerCase()) {
      case 'beforebegin':
        if (el.parentNode) el.parentNode.insertBefore(node, el);
        break;
      case 'afterbegin':
        el.insertBefore(node, el.firstChild);
        break;
      case 'beforeend':
        el.appendChild(node);
        break;
      case 'afterend':
        if (el.parentNode) el.parentNode.insertBefore(node, el.nextSibling);
        break;
      default:
        throw domError('SyntaxError', "insertAdjacent: '" + where + "' is not a valid position");
    }
    return node;
  }

  function DOMTokenList(el, name) {
    this.__e = el;
    this.__a = name;
  }
  function tokens(tl) {
    var v = attr(tl.__e, tl.__a);
    return v ? v.split(/[\t\n\f\r ]+/).filter(Boolean) : [];
  }
  function setTokens(tl, t) {
    N.setAttr(tl.__e.__d.__h, tl.__e.__i, tl.__a, t.join(' '));
  }
  function checkToken(t) {
    t = String(t);
    if (t === '') throw domError('SyntaxError', 'classList: the token must not be empty');
    if (/\s/.test(t)) throw domError('InvalidCharacterError', "classList: '" + t + "' contains whitespace");
    return t;
  }
  accessors(DOMTokenList.prototype, {
    length: function () {
      return tokens(this).length;
    },
    value: {
      get: function () {
        return attr(this.__e, this.__a) || '';
      },
      set: function (v) {
        N.setAttr(this.__e.__d.__h, this.__e.__i, this.__a, String(v));
      },
    },
  });
  methods(DOMTokenList.prototype, {
    item: function (i) {
      return tokens(this)[i] || null;
    },
    contains: function (t) {
      return tokens(this).indexOf(String(t)) >= 0;
    },
    add: function () {
      var t = tokens(this);
      for (var i = 0; i < arguments.length; i++) {
        var c = checkToken(arguments[i]);
        if (t.indexOf(c) < 0) t.push(c);
      }
      setTokens(this, t);
    },
    remove: function () {
      var drop = Array.prototype.map.call(arguments, checkToken);
      setTokens(this, tokens(this).filter(function (c) {
        return drop.indexOf(c) < 0;
      }));
    },
    toggle: function (t, force) {
      t = checkToken(t);
      var has = this.contains(t);
      if (force === undefined ? has : !force) {
        this.remove(t);
        return false;
      }
      if (!has) this.add(t);
      return true;
    },
    replace: function (a, b) {
      var t = tokens(this), i = t.indexOf(checkToken(a));
      if (i < 0) return false;
      t[i] = checkToken(b);
      setTokens(this, t);
      return true;
    },
    forEach: function (f, self) {
      tokens(this).forEach(f, self);
    },
    toString: function () {
      return this.value;
    },
  });

  function dataKey(attrName) {
    return attrName.slice(5).replace(/-([a-z])/g, function (_, c) {
      return c.toUpperCase();
    });
  }
  function dataAttr(key) {
    return 'data-' + String(key).replace(/[A-Z]/g, function (c) {
      return '-' + c.toLowerCase();
    });
  }
  function makeDataset(el) {
    return new Proxy({}, {
      get: function (_, k) {
        if (typeof k !== 'string') return undefined;
        var v = attr(el, dataAttr(k));
        return v === null ? undefined : v;
      },
      set: function (_, k, v) {
        N.setAttr(el.__d.__h, el.__i, dataAttr(k), String(v));
        return true;
      },
      has: function (_, k) {
        return attr(el, dataAttr(k)) !== null;
      },
      deleteProperty: function (_, k) {
        N.removeAttr(el.__d.__h, el.__i, dataAttr(k));
        return true;
      },
      ownKeys: function () {
        var a = N.attrs(el.__d.__h, el.__i), out = [];
        for (var i = 0; i < a.length; i += 2) if (a[i].indexOf('data-') === 0) out.push(dataKey(a[i]));
        return out;
      },
      getOwnPropertyDescriptor: function (_, k) {
        var v = attr(el, dataAttr(k));
        return v === null ? undefined : { value: v, writable: true, enumerable: true, configurable: true };
      },
    });
  }

  // Inline styles: read from the `style` attribute, written back to it on every change
  // (a proxy, so that `el.style.color = 'red'` is seen).
  function CSSStyleDeclaration() {
    illegal();
  }
  function makeStyle(el) {
    var st = Object.create(CSSStyleDeclaration.prototype);
    Object.defineProperty(st, '__e', { value: el });
    var text = attr(el, 'style');
    if (text) parseStyle(st, text);
    return new Proxy(st, {
      set: function (t, k, v) {
        if (typeof k !== 'string' || k in CSSStyleDeclaration.prototype) {
          t[k] = v;
          return true;
        }
        t[k] = v == null ? '' : String(v);
        syncStyle(t);
        return true;
      },
      deleteProperty: function (t, k) {
        delete t[k];
        syncStyle(t);
        return true;
      },
    });
  }
  function camel(p) {
    return p.replace(/-([a-z])/g, function (_, c) {
      return c.toUpperCase();
    });
  }
  function dash(p) {
    return p.replace(/[A-Z]/g, function (c) {
      return '-' + c.toLowerCase();
    });
  }
  function parseStyle(st, text) {
    String(text).split(';').forEach(function (decl) {
      var i = decl.indexOf(':');
      if (i > 0) st[camel(decl.slice(0, i).trim())] = decl.slice(i + 1).trim();
    });
  }
  function styleText(st) {
    return Object.keys(st)
      .filter(function (k) {
        return typeof st[k] === 'string' && st[k] !== '';
      })
      .map(function (k) {
        return dash(k) + ': ' + st[k] + ';';
      })
      .join(' ');
  }
  function syncStyle(st) {
    var t = styleText(st);
    if (t) N.setAttr(st.__e.__d.__h, st.__e.__i, 'style', t);
    else N.removeAttr(st.__e.__d.__h, st.__e.__i, 'style');
  }
  methods(CSSStyleDeclaration.prototype, {
    getPropertyValue: function (p) {
      var v = this[camel(String(p))];
      return typeof v === 'string' ? v : '';
    },
    setProperty: function (p, v) {
      this[camel(String(p))] = v == null ? '' : String(v);
    },
    removeProperty: function (p) {
      var old = this.getPropertyValue(p);
      delete this[camel(String(p))];
      return old;
    },
  });
  accessors(CSSStyleDeclaration.prototype, {
    cssText: {
      get: function () {
        return styleText(this);
      },
      set: function (t) {
        var self = this;
        Object.keys(this).forEach(function (k) {
          delete self[k];
        });
        parseStyle(this, t);
        syncStyle(this);
      },
    },
    length: function () {
      return Object.keys(this).length;
    },
  });

  // ---- forms --------------------------------------------------------------------
  function isTag(el, re) {
    return el.nodeType === 1 && re.test(lname(el));
  }
  function inputType(el) {
    var t = (attr(el, 'type') || '').toLowerCase();
    return /^(hidden|text|search|tel|url|email|password|date|month|week|time|datetime-local|number|range|color|checkbox|radio|file|submit|image|reset|button)$/.test(t) ? t : 'text';
  }
  function checkable(el) {
    return lname(el) === 'input' && /^(checkbox|radio)$/.test(inputType(el));
  }
  function owningSelect(opt) {
    for (var p = opt.parentNode; p && p.nodeType === 1; p = p.parentNode) {
      if (lname(p) === 'select') return p;
      if (lname(p) !== 'optgroup') return null;
    }
    return null;
  }
  function options(sel) {
    return sel.querySelectorAll('option');
  }
  function explicitSelected(o) {
    return o.__s !== undefined ? o.__s : attr(o, 'selected') !== null;
  }
  function selectedIndex(sel) {
    var opts = options(sel), last = -1, i;
    for (i = 0; i < opts.length; i++) {
      if (explicitSelected(opts[i])) {
        if (sel.multiple) return i;
        last = i;
      }
    }
    if (last >= 0 || sel.multiple || parseInt(attr(sel, 'size'), 10) > 1) return last;
    for (i = 0; i < opts.length; i++) if (attr(opts[i], 'disabled') === null) return i;
    return -1;
  }
  function optionValue(o) {
    var v = attr(o, 'value');
    return v !== null ? v : o.textContent.replace(/[\t\n\f\r ]+/g, ' ').trim();
  }
  function formOf(el) {
    var id = attr(el, 'form');
    if (id !== null && el.__d) return el.__d.getElementById(id);
    for (var p = el.parentNode; p; p = p.parentNode) if (p.nodeType === 1 && lname(p) === 'form') return p;
    return null;
  }
  accessors(HTMLElement.prototype, {
    value: {
      get: function () {
        switch (lname(this)) {
          case 'input':
            if (this.__v !== undefined) return this.__v;
            var v = attr(this, 'value');
            return v !== null ? v : checkable(this) ? 'on' : '';
          case 'textarea':
            return this.__v !== undefined ? this.__v : this.textContent;
          case 'select':
            var i = selectedIndex(this);
            return i < 0 ? '' : optionValue(options(this)[i]);
          case 'option':
            return optionValue(this);
          case 'button': case 'data': case 'param': case 'li': case 'meter': case 'progress': case 'output':
            return attr(this, 'value') || '';
          default:
            return undefined;
        }
      },
      set: function (v) {
        v = v == null ? '' : String(v);
        switch (lname(this)) {
          case 'input':
          case 'textarea':
            this.__v = v;
            break;
          case 'select':
            var opts = options(this), found = false;
            for (var i = 0; i < opts.length; i++) {
              var on = !found && optionValue(opts[i]) === v;
              opts[i].__s = on;
              found = found || on;
            }
            break;
          default:
            N.setAttr(this.__d.__h, this.__i, 'value', v);
        }
      },
    },
    defaultValue: {
      get: function () {
        return lname(this) === 'textarea' ? this.textContent : attr(this, 'value') || '';
      },
      set: function (v) {
        if (lname(this) === 'textarea') this.textContent = v;
        else N.setAttr(this.__d.__h, this.__i, 'value', String(v));
      },
    },
    checked: {
      get: function () {
        return this.__c !== undefined ? this.__c : attr(this, 'checked') !== null;
      },
      set: function (v) {
        this.__c = !!v;
        if (v && lname(this) === 'input' && inputType(this) === 'radio') uncheckGroup(this);
      },
    },
    defaultChecked: reflectBool('checked'),
    selected: {
      get: function () {
        if (lname(this) !== 'option') return undefined;
        var sel = owningSelect(this);
        if (sel && !sel.multiple) return options(sel)[selectedIndex(sel)] === this;
        return explicitSelected(this);
      },
      set: function (v) {
        var sel = owningSelect(this);
        if (v && sel && !sel.multiple) {
          var opts = options(sel);
          for (var i = 0; i < opts.length; i++) opts[i].__s = false;
        }
        this.__s = !!v;
      },
    },
    defaultSelected: reflectBool('selected'),
    selectedIndex: {
      get: function () {
        return lname(this) === 'select' ? selectedIndex(this) : undefined;
      },
      set: function (n) {
        var opts = options(this);
        for (var i = 0; i < opts.length; i++) opts[i].__s = i === n;
      },
    },
    options: function () {
      return lname(this) === 'select' ? options(this) : undefined;
    },
    selectedOptions: function () {
      return list(Array.prototype.filter.call(options(this), function (o) {
        return o.selected;
      }));
    },
    index: function () {
      var sel = owningSelect(this);
      return sel ? Array.prototype.indexOf.call(options(sel), this) : 0;
    },
    text: {
      get: function () {
        return lname(this) === 'option' ? this.textContent.replace(/[\t\n\f\r ]+/g, ' ').trim() : this.textContent;
      },
      set: function (v) {
        this.textContent = v;
      },
    },
    type: {
      get: function () {
        switch (lname(this)) {
          case 'input':
            return inputType(this);
          case 'select':
            return this.multiple ? 'select-multiple' : 'select-one';
          case 'textarea':
            return 'textarea';
          case 'button':
            var t = (attr(this, 'type') || '').toLowerCase();
            return t === 'reset' || t === 'button' ? t : 'submit';
          default:
            return attr(this, 'type') || '';
        }
      },
      set: function (v) {
        N.setAttr(this.__d.__h, this.__i, 'type', String(v));
      },
    },
    form: function () {
      return /^(input|select|textarea|button|fieldset|output|object|label|option|legend)$/.test(lname(this)) ? formOf(this) : undefined;
    },
    elements: function () {
      if (!/^(form|fieldset)$/.test(lname(this))) return undefined;
      var els = this.querySelectorAll('input, select, textarea, button, fieldset, object, output');
      for (var i = 0; i < els.length; i++) {
        var n = attr(els[i], 'name') || attr(els[i], 'id');
        if (n && !(n in els)) els[n] = els[i];
      }
      return els;
    },
    length: function () {
      var n = lname(this);
      return n === 'form' ? this.elements.length : n === 'select' ? options(this).length : undefined;
    },
    labels: function () {
      var id = this.id;
      return list(id ? this.__d.querySelectorAll('label[for="' + id.replace(/"/g, '\\"') + '"]') : []);
    },
    htmlFor: reflect('for'),
    name: reflect('name'),
    disabled: reflectBool('disabled'),
    readOnly: reflectBool('readonly'),
    required: reflectBool('required'),
    multiple: reflectBool('multiple'),
    autofocus: reflectBool('autofocus'),
    noValidate: reflectBool('novalidate'),
    placeholder: reflect('placeholder'),
    alt: reflect('alt'),
    rel: reflect('rel'),
    target: reflect('target'),
    httpEquiv: reflect('http-equiv'),
    charset: reflect('charset'),
    enctype: reflect('enctype', 'application/x-www-form-urlencoded'),
    method: {
      get: function () {
        var m = (attr(this, 'method') || '').toLowerCase();
        return m === 'post' || m === 'dialog' ? m : 'get';
      },
      set: function (v) {
        N.setAttr(this.__d.__h, this.__i, 'method', String(v));
      },
    },
    action: {
      get: function () {
        var v = attr(this, 'action');
        return resolve(v === null || v === '' ? this.__d.URL : v, this.__d.URL) || '';
      },
      set: function (v) {
        N.setAttr(this.__d.__h, this.__i, 'action', String(v));
      },
    },
    src: reflectUrl('src'),
    href: reflectUrl('href'),
    maxLength: {
      get: function () {
        var v = parseInt(attr(this, 'maxlength'), 10);
        return isNaN(v) ? -1 : v;
      },
      set: function (v) {
        N.setAttr(this.__d.__h, this.__i, 'maxlength', String(v));
      },
    },
    size: {
      get: function () {
        var v = parseInt(attr(this, 'size'), 10);
        return isNaN(v) ? (lname(this) === 'input' ? 20 : 0) : v;
      },
      set: function (v) {
        N.setAttr(this.__d.__h, this.__i, 'size', String(v));
      },
    },
    // HTMLHyperlinkElementUtils (a, area): the parts of the resolved href.
    protocol: urlPart(1),
    host: urlPart(4),
    hostname: urlPart(5),
    port: urlPart(6),
    pathname: urlPart(7),
    search: urlPart(8),
    hash: urlPart(9),
    origin: urlPart(10),
    username: urlPart(2),
    password: urlPart(3),
    // Script elements: their text.
    async: reflectBool('async'),
    defer: reflectBool('defer'),
  });
  accessors(HTMLElement.prototype, {
    // `<template>`: its contents fragment.
    content: {
      get: function () {
        if (lname(this) !== 'template') return attr(this, 'content') || '';
        var id = N.template(this.__d.__h, this.__i);
        return id < 0 ? null : wrap(this.__d, id);
      },
      set: function (v) {
        N.setAttr(this.__d.__h, this.__i, 'content', String(v));
      },
    },
  });
  function urlPart(k) {
    return {
      get: function () {
        if (!/^(a|area)$/.test(lname(this))) return undefined;
        var v = attr(this, 'href');
        if (v === null) return '';
        var r = N.url(v, this.__d.URL);
        return r === null ? '' : r[k];
      },
      set: function () {},
    };
  }
  function uncheckGroup(radio) {
    var name = attr(radio, 'name');
    if (!name) return;
    var root = formOf(radio) || radio.__d;
    var all = root.querySelectorAll('input[type=radio]');
    for (var i = 0; i < all.length; i++) {
      if (all[i] !== radio && attr(all[i], 'name') === name && formOf(all[i]) === formOf(radio)) all[i].__c = false;
    }
  }
  methods(HTMLElement.prototype, {
    submit: function () {
      // No navigation: a page loads only through camut.browser.load.
    },
    requestSubmit: function () {
      if (lname(this) === 'form') this.dispatchEvent(new Event('submit', { bubbles: true, cancelable: true }));
    },
    reset: function () {
      var els = this.elements || [];
      for (var i = 0; i < els.length; i++) {
        delete els[i].__v;
        delete els[i].__c;
      }
      var opts = this.querySelectorAll('option');
      for (var j = 0; j < opts.length; j++) delete opts[j].__s;
    },
    select: function () {},
    checkValidity: function () {
      return true;
    },
    reportValidity: function () {
      return true;
    },
    setCustomValidity: function () {},
  });

  function click(el) {
    if (el.disabled && /^(button|input|select|textarea)$/.test(lname(el))) return;
    var toggled = checkable(el), was = el.checked;
    if (toggled) el.checked = inputType(el) === 'radio' ? true : !was;
    var vu = vuOf(el.__d);
    var ok = el.dispatchEvent(new MouseEvent('click', { bubbles: true, cancelable: true, composed: true, view: vu ? vu.w : null, detail: 1 }));
    if (!ok) {
      if (toggled) el.checked = was;
      return;
    }
    if (toggled && el.checked !== was) {
      el.dispatchEvent(new Event('input', { bubbles: true }));
      el.dispatchEvent(new Event('change', { bubbles: true }));
    }
    var n = lname(el), t = el.type;
    if ((n === 'button' && t === 'submit') || (n === 'input' && (t === 'submit' || t === 'image'))) {
      var f = formOf(el);
      if (f) f.dispatchEvent(new Event('submit', { bubbles: true, cancelable: true }));
    }
  }
  function focus(el) {
    var doc = el.__d;
    if (doc.__active === el) return;
    var prev = doc.__active;
    if (prev) blur(prev, el);
    doc.__active = el;
    el.dispatchEvent(new FocusEvent('focus', { relatedTarget: prev || null }));
    el.dispatchEvent(new FocusEvent('focusin', { bubbles: true, relatedTarget: prev || null }));
  }
  function blur(el, next) {
    el.__d.__active = null;
    el.dispatchEvent(new FocusEvent('blur', { relatedTarget: next }));
    el.dispatchEvent(new FocusEvent('focusout', { bubbles: true, relatedTarget: next }));
  }

  // ---- documents ----------------------------------------------------------------
  var docCount = 0;
  function makeDocument(h, url) {
    var d = Object.create(Document.prototype);
    d.__h = h;
    d.__i = 0;
    d.__d = d;
    d.__n = [d];
    d.__url = url || 'about:blank';
    d.__active = null;
    d.__id = ++docCount;
    d.__vu = null;
    return d;
  }
  function bodyOf(d) {
    return wrap(d, N.htmlChild(d.__h, 'body'));
  }
  accessors(Document.prototype, {
    documentElement: function () {
      return wrap(this, N.docElement(this.__h));
    },
    head: function () {
      return wrap(this, N.htmlChild(this.__h, 'head'));
    },
    body: function () {
      return bodyOf(this);
    },
    title: {
      get: function () {
        var t = this.querySelector('title');
        return t ? t.textContent.replace(/[\t\n\f\r ]+/g, ' ').trim() : '';
      },
      set: function (v) {
        var t = this.querySelector('title');
        if (!t && this.head) t = this.head.appendChild(this.createElement('title'));
        if (t) t.textContent = v;
      },
    },
    doctype: function () {
      var k = this.childNodes;
      for (var i = 0; i < k.length; i++) if (k[i].nodeType === 10) return k[i];
      return null;
    },
    URL: function () {
      var vu = vuOf(this);
      return vu ? vu.loc.__href : this.__url;
    },
    documentURI: function () {
      return this.URL;
    },
    location: function () {
      var vu = vuOf(this);
      return vu ? vu.loc : null;
    },
    defaultView: function () {
      var vu = vuOf(this);
      return vu ? vu.w : null;
    },
    readyState: function () {
      return this.__loading ? 'loading' : 'complete';
    },
    compatMode: function () {
      return N.quirks(this.__h) ? 'BackCompat' : 'CSS1Compat';
    },
    characterSet: function () {
      return 'UTF-8';
    },
    charset: function () {
      return 'UTF-8';
    },
    contentType: function () {
      return 'text/html';
    },
    activeElement: function () {
      return this.__active || bodyOf(this);
    },
    forms: function () {
      return this.getElementsByTagName('form');
    },
    links: function () {
      return this.querySelectorAll('a[href], area[href]');
    },
    images: function () {
      return this.getElementsByTagName('img');
    },
    scripts: function () {
      return this.getElementsByTagName('script');
    },
    cookie: {
      get: function () {
        var vu = vuOf(this);
        if (!vu || !/^https?:/.test(vu.loc.__href)) return '';
        var c = vu.camut.cookies.get(vu.loc.__href);
        return Object.keys(c)
          .map(function (k) {
            return k + '=' + c[k];
          })
          .join('; ');
      },
      set: function (v) {
        var vu = vuOf(this);
        if (vu && /^https?:/.test(vu.loc.__href)) vu.camut.cookies.set(vu.loc.__href, String(v));
      },
    },
    referrer: function () {
      return this.__referrer || '';
    },
    visibilityState: function () {
      return 'visible';
    },
    hidden: function () {
      return false;
    },
    implementation: function () {
      return implementation;
    },
  });
  var implementation = {
    createHTMLDocument: function (title) {
      var d = makeDocument(N.parse('<!DOCTYPE html><html><head></head><body></body></html>'), null);
      if (title !== undefined) d.title = title;
      return d;
    },
    hasFeature: function () {
      return true;
    },
  };
  methods(Document.prototype, {
    createElement: function (name) {
      name = String(name);
      if (!/^[A-Za-z][^\s\/>\x00]*$/.test(name)) throw domError('InvalidCharacterError', "createElement: '" + name + "' is not a valid element name");
      return wrap(this, N.create(this.__h, 1, name.toLowerCase()));
    },
    createElementNS: function (ns, name) {
      return this.createElement(String(name).replace(/^.*:/, ''));
    },
    createTextNode: function (data) {
      return wrap(this, N.create(this.__h, 3, String(data)));
    },
    createComment: function (data) {
      return wrap(this, N.create(this.__h, 8, String(data)));
    },
    createDocumentFragment: function () {
      return wrap(this, N.create(this.__h, 11, ''));
    },
    createEvent: function (kind) {
      var e = new (/Mouse/.test(kind) ? MouseEvent : /Custom/.test(kind) ? CustomEvent : Event)('');
      e.initEvent = function (type, bubbles, cancelable) {
        this.type = String(type);
        this.bubbles = !!bubbles;
        this.cancelable = !!cancelable;
      };
      e.initCustomEvent = function (type, bubbles, cancelable, detail) {
        this.initEvent(type, bubbles, cancelable);
        this.detail = detail;
      };
      return e;
    },
    importNode: function (node, deep) {
      var c = need(node, 'importNode').cloneNode(!!deep);
      return adopt(this, c);
    },
    adoptNode: function (node) {
      return adopt(this, need(node, 'adoptNode'));
    },
    getElementById: function (id) {
      return wrap(this, N.byId(this.__h, 0, String(id)));
    },
    getElementsByName: function (name) {
      return list(wrapAll(this, N.byAttr(this.__h, 0, 'name', String(name))));
    },
    hasFocus: function () {
      return true;
    },
    open: function () {
      N.reset(this.__h, '');
      this.__n = [this];
      this.__active = null;
      this.__loading = true;
      this.__buffer = [];
      return this;
    },
    write: function () {
      if (!this.__loading) this.open();
      for (var i = 0; i < arguments.length; i++) this.__buffer.push(String(arguments[i]));
    },
    writeln: function () {
      this.write.apply(this, Array.prototype.concat.apply([], arguments).concat('\n'));
    },
    close: function () {
      if (!this.__loading) return;
      var html = this.__buffer.join('');
      this.__buffer = null;
      N.reset(this.__h, html);
      this.__n = [this];
      this.__loading = false;
      loaded(this);
    },
  });
  fragmentById(DocumentFragment.prototype);
  function fragmentById(p) {
    methods(p, {
      getElementById: function (id) {
        return wrap(this.__d, N.byId(this.__d.__h, this.__i, String(id)));
      },
    });
  }

  // After a page is in a VU's document: its scripts run only when the campaign asks for
  // it (those of other documents never do, as in browsers: they have no window).
  function loaded(doc) {
    var vu = vuOf(doc);
    if (!vu) return;
    if (settings.runScripts) runScripts(doc, vu.ev);
    doc.dispatchEvent(new Event('DOMContentLoaded', { bubbles: true }));
    dispatch(vu.w, new Event('load'));
  }
  function runScripts(doc, evalScript) {
    var scripts = doc.querySelectorAll('script');
    for (var i = 0; i < scripts.length; i++) {
      var s = scripts[i], type = (attr(s, 'type') || '').toLowerCase();
      if (type && !/^(text|application)\/(javascript|ecmascript)$/.test(type) && type !== 'module') continue;
      if (attr(s, 'src') !== null) continue;
      var name = doc.URL + ' <script> ' + (i + 1);
      try {
        evalScript(s.textContent, name);
      } catch (e) {
        var err = new Error(
          'page script ' + (i + 1) + ' of ' + doc.URL + ' threw (page scripts run because browserEmulation.runScripts is true): ' +
            (e && e.name ? e.name + ': ' : '') + (e && e.message !== undefined ? e.message : String(e))
        );
        err.stack = (e && e.stack) || err.stack;
        throw err;
      }
    }
  }

  function Storage() {
    Object.defineProperty(this, '__m', { value: Object.create(null) });
  }
  methods(Storage.prototype, {
    getItem: function (k) {
      k = String(k);
      return k in this.__m ? this.__m[k] : null;
    },
    setItem: function (k, v) {
      this.__m[String(k)] = String(v);
    },
    removeItem: function (k) {
      delete this.__m[String(k)];
    },
    clear: function () {
      for (var k in this.__m) delete this.__m[k];
    },
    key: function (i) {
      return Object.keys(this.__m)[i] || null;
    },
  });
  accessors(Storage.prototype, {
    length: function () {
      return Object.keys(this.__m).length;
    },
  });

  // A VU's navigator is an empty object over this one.
  var NAVIGATOR = {
    userAgent: settings.userAgent,
    appName: 'Netscape',
    appCodeName: 'Mozilla',
    appVersion: settings.userAgent.replace(/^Mozilla\//, ''),
    platform: 'Linux x86_64',
    product: 'Gecko',
    vendor: '',
    language: 'en-US',
    languages: Object.freeze(['en-US', 'en']),
    cookieEnabled: true,
    onLine: true,
    webdriver: false,
    hardwareConcurrency: 1,
  };
  function History() {
    illegal();
  }
  methods(History.prototype, {
    pushState: function (state, _, url) {
      this.state = state === undefined ? null : state;
      this.length++;
      if (url != null) this.__loc.href = url;
    },
    replaceState: function (state, _, url) {
      this.state = state === undefined ? null : state;
      if (url != null) this.__loc.href = url;
    },
    back: function () {},
    forward: function () {},
    go: function () {},
  });

  function parseHtml(text, type, url) {
    if (String(type) !== 'text/html') {
      throw new TypeError("DOMParser.parseFromString: only 'text/html' is supported by browser emulation, not '" + type + "'");
    }
    // Scripts of parsed documents never run, as in browsers.
    return makeDocument(N.parse(String(text)), url);
  }

  // ---- URL, URLSearchParams, base64 ---------------------------------------------
  function URLSearchParams(init) {
    this.__p = [];
    this.__u = null;
    if (init == null) return;
    if (typeof init === 'object') {
      var self = this;
      if (Array.isArray(init)) init.forEach(function (pair) {
        self.append(pair[0], pair[1]);
      });
      else if (init instanceof URLSearchParams) this.__p = init.__p.slice();
      else Object.keys(init).forEach(function (k) {
        self.append(k, init[k]);
      });
      return;
    }
    parseQuery(this, String(init));
  }
  function decodeForm(s) {
    s = s.replace(/\+/g, ' ');
    try {
      return decodeURIComponent(s);
    } catch (e) {
      return s;
    }
  }
  function encodeForm(s) {
    return encodeURIComponent(s).replace(/%20/g, '+').replace(/[!'()~]/g, function (c) {
      return '%' + c.charCodeAt(0).toString(16).toUpperCase();
    });
  }
  function parseQuery(sp, s) {
    sp.__p = [];
    if (s.charAt(0) === '?') s = s.slice(1);
    s.split('&').forEach(function (part) {
      if (!part) return;
      var i = part.indexOf('=');
      sp.__p.push(i < 0 ? [decodeForm(part), ''] : [decodeForm(part.slice(0, i)), decodeForm(part.slice(i + 1))]);
    });
  }
  function touched(sp) {
    if (sp.__u) {
      var q = sp.toString();
      sp.__u.__set(8, q ? '?' + q : '');
    }
  }
  methods(URLSearchParams.prototype, {
    append: function (k, v) {
      this.__p.push([String(k), String(v)]);
      touched(this);
    },
    set: function (k, v) {
      k = String(k);
      var i = this.__p.findIndex(function (p) {
        return p[0] === k;
      });
      this.delete(k);
      if (i < 0) this.__p.push([k, String(v)]);
      else this.__p.splice(Math.min(i, this.__p.length), 0, [k, String(v)]);
      touched(this);
    },
    get: function (k) {
      for (var i = 0; i < this.__p.length; i++) if (this.__p[i][0] === String(k)) return this.__p[i][1];
      return null;
    },
    getAll: function (k) {
      return this.__p.filter(function (p) {
        return p[0] === String(k);
      }).map(function (p) {
        return p[1];
      });
    },
    has: function (k) {
      return this.get(k) !== null;
    },
    delete: function (k) {
      this.__p = this.__p.filter(function (p) {
        return p[0] !== String(k);
      });
      touched(this);
    },
    sort: function () {
      this.__p.sort(function (a, b) {
        return a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0;
      });
      touched(this);
    },
    forEach: function (f, self) {
      var sp = this;
      this.__p.forEach(function (p) {
        f.call(self, p[1], p[0], sp);
      });
    },
    keys: function () {
      return this.__p.map(function (p) {
        return p[0];
      })[Symbol.iterator]();
    },
    values: function () {
      return this.__p.map(function (p) {
        return p[1];
      })[Symbol.iterator]();
    },
    entries: function () {
      return this.__p.map(function (p) {
        return [p[0], p[1]];
      })[Symbol.iterator]();
    },
    toString: function () {
      return this.__p.map(function (p) {
        return encodeForm(p[0]) + '=' + encodeForm(p[1]);
      }).join('&');
    },
  });
  URLSearchParams.prototype[Symbol.iterator] = URLSearchParams.prototype.entries;
  accessors(URLSearchParams.prototype, {
    size: function () {
      return this.__p.length;
    },
  });

  var URL_PARTS = ['href', 'protocol', 'username', 'password', 'host', 'hostname', 'port', 'pathname', 'search', 'hash', 'origin'];
  function URL(url, base) {
    var r = N.url(String(url), base === undefined ? null : String(base));
    if (r === null) throw new TypeError("URL: '" + url + "' is not a valid URL" + (base === undefined ? '' : " against base '" + base + "'"));
    Object.defineProperty(this, '__r', { value: r, writable: true });
    Object.defineProperty(this, '__q', { value: null, writable: true });
  }
  URL_PARTS.forEach(function (p, i) {
    Object.defineProperty(URL.prototype, p, {
      enumerable: true,
      get: function () {
        return this.__r[i];
      },
      set: i === 10 ? undefined : function (v) {
        this.__set(i, String(v));
      },
    });
  });
  methods(URL.prototype, {
    __set: function (i, v) {
      var r = N.urlSet(this.__r[0], i, v);
      if (r === null) {
        if (i === 0) throw new TypeError("URL: '" + v + "' is not a valid URL");
        return;
      }
      this.__r = r;
      if (this.__q && i !== 8) parseQuery(this.__q, r[8]);
    },
    toString: function () {
      return this.__r[0];
    },
    toJSON: function () {
      return this.__r[0];
    },
  });
  accessors(URL.prototype, {
    searchParams: function () {
      if (!this.__q) {
        this.__q = new URLSearchParams(this.__r[8]);
        this.__q.__u = this;
      }
      return this.__q;
    },
  });
  URL.canParse = function (u, b) {
    return N.url(String(u), b === undefined ? null : String(b)) !== null;
  };

  // A VU's location: its href is the only state (`__href`).
  function Location() {
    illegal();
  }
  URL_PARTS.forEach(function (p, i) {
    Object.defineProperty(Location.prototype, p, {
      enumerable: true,
      get: function () {
        if (i === 0) return this.__href;
        var r = N.url(this.__href, null);
        return r === null ? (p === 'origin' ? 'null' : '') : r[i];
      },
      set: function (v) {
        if (i === 0) {
          var r = resolve(v, this.__href);
          if (r === null) throw new TypeError("location.href: '" + v + "' is not a valid URL");
          this.__href = r;
        }
      },
    });
  });
  methods(Location.prototype, {
    assign: function (u) {
      this.href = u;
    },
    replace: function (u) {
      this.href = u;
    },
    reload: function () {},
    toString: function () {
      return this.__href;
    },
  });
  function makeLocation(href) {
    var loc = Object.create(Location.prototype);
    Object.defineProperty(loc, '__href', { value: href, writable: true });
    return loc;
  }

  function FormData(form) {
    this.__p = [];
    if (form) {
      var self = this;
      serializeForm(form).forEach(function (p) {
        self.__p.push(p);
      });
    }
  }
  FormData.prototype = Object.create(URLSearchParams.prototype);
  FormData.prototype.constructor = FormData;
  function serializeForm(form) {
    var out = [], els = form.elements || [];
    for (var i = 0; i < els.length; i++) {
      var el = els[i], name = attr(el, 'name'), t = el.type;
      if (!name || el.disabled || /^(submit|button|image|reset|file)$/.test(t) || lname(el) === 'fieldset') continue;
      if ((t === 'checkbox' || t === 'radio') && !el.checked) continue;
      if (lname(el) === 'select') {
        Array.prototype.forEach.call(el.selectedOptions, function (o) {
          out.push([name, o.value]);
        });
        continue;
      }
      out.push([name, el.value]);
    }
    return out;
  }

  // ---- requests: XMLHttpRequest, fetch, page loads -------------------------------
  var STATUS_TEXT = {
    200: 'OK', 201: 'Created', 202: 'Accepted', 204: 'No Content', 206: 'Partial Content', 301: 'Moved Permanently',
    302: 'Found', 303: 'See Other', 304: 'Not Modified', 307: 'Temporary Redirect', 308: 'Permanent Redirect',
    400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 405: 'Method Not Allowed',
    409: 'Conflict', 410: 'Gone', 413: 'Payload Too Large', 422: 'Unprocessable Entity', 429: 'Too Many Requests',
    500: 'Internal Server Error', 502: 'Bad Gateway', 503: 'Service Unavailable', 504: 'Gateway Timeout',
  };
  function hasHeader(h, name) {
    name = name.toLowerCase();
    return Object.keys(h).some(function (k) {
      return k.toLowerCase() === name;
    });
  }
  // One call through camut.http: measured, counted and tagged like any other.
  // `done(networkError, response)`; HTTP error statuses come back as responses.
  function request(vu, method, url, headers, body, operation, timeout, done) {
    if (!hasHeader(headers, 'user-agent')) headers['User-Agent'] = settings.userAgent;
    var here = vu.loc.__href;
    if (here !== 'about:blank' && !hasHeader(headers, 'referer')) headers.Referer = here;
    var opts = { url: url, method: method, headers: headers, followRedirects: 20 };
    if (body != null && body !== '') opts.body = body;
    if (operation) opts.operation = String(operation);
    if (timeout > 0) opts.timeout = timeout;
    vu.camut.http(opts, function (err, data, res) {
      if (err && !(err.response && err.response.statusCode)) return done(err, null);
      done(null, res || err.response);
    });
  }
  function bodyText(body, headers) {
    if (body == null) return null;
    if (body instanceof URLSearchParams && !(body instanceof FormData)) {
      if (!hasHeader(headers, 'content-type')) headers['Content-Type'] = 'application/x-www-form-urlencoded;charset=UTF-8';
      return body.toString();
    }
    if (body instanceof FormData) {
      if (!hasHeader(headers, 'content-type')) headers['Content-Type'] = 'application/x-www-form-urlencoded;charset=UTF-8';
      return URLSearchParams.prototype.toString.call(body);
    }
    if (typeof body === 'string' && !hasHeader(headers, 'content-type')) headers['Content-Type'] = 'text/plain;charset=UTF-8';
    return typeof body === 'string' ? body : String(body);
  }

  // Each VU's window has its own constructor over this prototype, which gives the
  // request its VU.
  function XHR(vu) {
    Object.defineProperty(this, '__vu', { value: vu });
    this.readyState = 0;
    this.status = 0;
    this.statusText = '';
    this.responseText = '';
    this.response = '';
    this.responseType = '';
    this.responseURL = '';
    this.responseXML = null;
    this.timeout = 0;
    this.withCredentials = false;
    this.operation = undefined;
    this.onreadystatechange = this.onload = this.onerror = this.onabort = this.ontimeout = this.onloadend = this.onloadstart = this.onprogress = null;
    this.upload = Object.create(EventTarget.prototype);
    this.__h = {};
    this.__rh = {};
    this.__sent = false;
    this.__gen = 0;
  }
  XHR.prototype = Object.create(EventTarget.prototype);
  XHR.prototype.constructor = XHR;
  Object.defineProperty(XHR, 'name', { value: 'XMLHttpRequest' });
  var XHR_STATES = { UNSENT: 0, OPENED: 1, HEADERS_RECEIVED: 2, LOADING: 3, DONE: 4 };
  function xhrEvent(x, type) {
    x.dispatchEvent(new Event(type));
  }
  methods(XHR.prototype, {
    open: function (method, url, async) {
      if (async === false) {
        throw new Error('XMLHttpRequest: synchronous requests are not supported in browser emulation; use async (the default)');
      }
      var u = resolve(url, this.__vu.loc.__href);
      if (u === null) throw domError('SyntaxError', "XMLHttpRequest.open: '" + url + "' is not a valid URL");
      this.__m = String(method).toUpperCase();
      this.__u = u;
      this.__h = {};
      this.__sent = false;
      this.__gen++;
      this.readyState = 1;
      this.status = 0;
      this.responseText = this.response = '';
      xhrEvent(this, 'readystatechange');
    },
    setRequestHeader: function (k, v) {
      if (this.readyState !== 1 || this.__sent) throw domError('InvalidStateError', 'XMLHttpRequest.setRequestHeader: call open() first');
      var existing = Object.keys(this.__h).filter(function (h) {
        return h.toLowerCase() === String(k).toLowerCase();
      })[0];
      if (existing) this.__h[existing] += ', ' + v;
      else this.__h[String(k)] = String(v);
    },
    overrideMimeType: function () {},
    getResponseHeader: function (k) {
      var v = this.__rh[String(k).toLowerCase()];
      return v === undefined ? null : v;
    },
    getAllResponseHeaders: function () {
      var h = this.__rh;
      return Object.keys(h)
        .map(function (k) {
          return k + ': ' + h[k] + '\r\n';
        })
        .join('');
    },
    abort: function () {
      if (this.readyState === 0 || this.readyState === 4 || !this.__sent) return;
      this.__gen++;
      this.readyState = 4;
      this.status = 0;
      xhrEvent(this, 'readystatechange');
      xhrEvent(this, 'abort');
      xhrEvent(this, 'loadend');
      this.readyState = 0;
    },
    send: function (body) {
      if (this.readyState !== 1 || this.__sent) throw domError('InvalidStateError', 'XMLHttpRequest.send: call open() first');
      this.__sent = true;
      var x = this, gen = this.__gen;
      var data = this.__m === 'GET' || this.__m === 'HEAD' ? null : bodyText(body, this.__h);
      xhrEvent(this, 'loadstart');
      request(this.__vu, this.__m, this.__u, this.__h, data, this.operation, this.timeout, function (err, res) {
        if (gen !== x.__gen) return;
        x.readyState = 4;
        if (err) {
          x.status = 0;
          var timedOut = /time/i.test(err.message || '');
          xhrEvent(x, 'readystatechange');
          xhrEvent(x, timedOut && x.timeout > 0 ? 'timeout' : 'error');
          xhrEvent(x, 'loadend');
          return;
        }
        x.status = res.statusCode;
        x.statusText = STATUS_TEXT[res.statusCode] || '';
        x.responseURL = res.url || x.__u;
        var h = {};
        Object.keys(res.headers || {}).forEach(function (k) {
          h[k.toLowerCase()] = res.headers[k];
        });
        x.__rh = h;
        var text = typeof res.body === 'string' ? res.body : '';
        x.responseText = text;
        if (x.responseType === 'json') {
          try {
            x.response = JSON.parse(text);
          } catch (e) {
            x.response = null;
          }
        } else if (x.responseType === 'document') {
          x.response = x.responseXML = makeDocument(N.parse(text), x.responseURL);
        } else {
          x.response = text;
        }
        xhrEvent(x, 'readystatechange');
        xhrEvent(x, 'load');
        xhrEvent(x, 'loadend');
      });
    },
  });
  // The `on…` properties of XHR are called by dispatch like element handlers.

  function Headers(init) {
    this.__h = {};
    if (init) {
      var self = this;
      if (init instanceof Headers) init = init.__h;
      if (Array.isArray(init)) init.forEach(function (p) {
        self.append(p[0], p[1]);
      });
      else Object.keys(init).forEach(function (k) {
        self.append(k, init[k]);
      });
    }
  }
  methods(Headers.prototype, {
    append: function (k, v) {
      k = String(k).toLowerCase();
      this.__h[k] = k in this.__h ? this.__h[k] + ', ' + v : String(v);
    },
    set: function (k, v) {
      this.__h[String(k).toLowerCase()] = String(v);
    },
    get: function (k) {
      var v = this.__h[String(k).toLowerCase()];
      return v === undefined ? null : v;
    },
    has: function (k) {
      return String(k).toLowerCase() in this.__h;
    },
    delete: function (k) {
      delete this.__h[String(k).toLowerCase()];
    },
    forEach: function (f, self) {
      var h = this.__h, me = this;
      Object.keys(h).sort().forEach(function (k) {
        f.call(self, h[k], k, me);
      });
    },
  });
  function Response(body, init) {
    init = init || {};
    this.__b = body == null ? '' : String(body);
    this.status = init.status === undefined ? 200 : init.status;
    this.statusText = init.statusText || STATUS_TEXT[this.status] || '';
    this.headers = new Headers(init.headers);
    this.url = init.url || '';
    this.redirected = !!init.redirected;
    this.type = 'basic';
    this.bodyUsed = false;
  }
  accessors(Response.prototype, {
    ok: function () {
      return this.status >= 200 && this.status < 300;
    },
  });
  function consume(r) {
    if (r.bodyUsed) return Promise.reject(new TypeError('Response: body already read'));
    r.bodyUsed = true;
    return Promise.resolve(r.__b);
  }
  methods(Response.prototype, {
    text: function () {
      return consume(this);
    },
    json: function () {
      return consume(this).then(JSON.parse);
    },
    clone: function () {
      var c = new Response(this.__b, { status: this.status, headers: this.headers, url: this.url });
      return c;
    },
  });
  // What a window has that needs no VU.
  function noop() {}
  var WINDOW_FNS = {
    atob: function (s) {
      return N.atob(String(s));
    },
    btoa: function (s) {
      return N.btoa(String(s));
    },
    getComputedStyle: function (el) {
      var st = el && el.style ? el.style : {};
      var out = Object.create(CSSStyleDeclaration.prototype);
      Object.keys(st).forEach(function (k) {
        out[k] = st[k];
      });
      return out;
    },
    matchMedia: function (q) {
      return { matches: false, media: String(q), addListener: noop, removeListener: noop, addEventListener: noop, removeEventListener: noop };
    },
    scrollTo: noop,
    scrollBy: noop,
    scroll: noop,
    focus: noop,
    blur: noop,
    alert: noop,
    confirm: function () {
      return true;
    },
    prompt: function () {
      return null;
    },
    open: function () {
      return null;
    },
    close: noop,
    print: noop,
    postMessage: noop,
  };
  var WINDOW_CLASSES = {
    Node: Node,
    Element: Element,
    HTMLElement: HTMLElement,
    CharacterData: CharacterData,
    Document: Document,
    HTMLDocument: HTMLDocument,
    DocumentType: DocumentType,
    Attr: Attr,
    DOMTokenList: DOMTokenList,
    CSSStyleDeclaration: CSSStyleDeclaration,
    EventTarget: EventTarget,
    Event: Event,
    CustomEvent: CustomEvent,
    UIEvent: UIEvent,
    MouseEvent: MouseEvent,
    KeyboardEvent: KeyboardEvent,
    FocusEvent: FocusEvent,
    Storage: Storage,
    Location: Location,
    History: History,
    URL: URL,
    URLSearchParams: URLSearchParams,
    FormData: FormData,
    Headers: Headers,
    Response: Response,
  };

  // jQuery: made on the first read of `$` or `jQuery` (or by camut.browser.jquery()).
  // The accessors are called with the VU's global object as `this`.
  function loadJquery(window) {
    delete window.$;
    delete window.jQuery;
    var jq = jqueryFactory(window);
    jq.ajaxPrefilter(operationPrefilter);
    return jq;
  }
  // `$.ajax({ operation: 'login' })` tags the call like camut.http's `operation`.
  function operationPrefilter(options, original) {
    if (original.operation !== undefined) {
      options.xhrFields = Object.assign({}, options.xhrFields, { operation: original.operation });
    }
  }
  var JQUERY_GLOBALS = {};
  ['$', 'jQuery'].forEach(function (k) {
    JQUERY_GLOBALS[k] = {
      configurable: true,
      enumerable: true,
      get: function () {
        loadJquery(this);
        return this[k];
      },
      set: function (v) {
        Object.defineProperty(this, k, { value: v, writable: true, configurable: true, enumerable: true });
      },
    };
  });

  // ---- a VU's window --------------------------------------------------------------
  return function (window, evalScript) {
    var camut = window.camut;
    var location = makeLocation('about:blank');
    var document = makeDocument(N.parse('<html><head></head><body></body></html>'), null);
    // Shared code reaches the VU through its main document.
    var vu = { w: window, camut: camut, loc: location, doc: document, ev: evalScript };
    document.__vu = vu;

    var history = Object.create(History.prototype);
    history.length = 1;
    history.state = null;
    history.scrollRestoration = 'auto';
    Object.defineProperty(history, '__loc', { value: location });

    function Text(data) {
      return document.createTextNode(data === undefined ? '' : data);
    }
    Text.prototype = TextProto;
    function Comment(data) {
      return document.createComment(data === undefined ? '' : data);
    }
    Comment.prototype = CommentProto;
    function DocumentFragment() {
      return document.createDocumentFragment();
    }
    DocumentFragment.prototype = FragmentProto;
    function DOMParser() {}
    DOMParser.prototype.parseFromString = function (text, type) {
      return parseHtml(text, type, location.__href);
    };
    function XMLHttpRequest() {
      XHR.call(this, vu);
    }
    XMLHttpRequest.prototype = XHR.prototype;
    Object.keys(XHR_STATES).forEach(function (k) {
      XMLHttpRequest[k] = XHR_STATES[k];
    });

    function fetch(input, init) {
      init = init || {};
      var url = typeof input === 'string' ? input : input && input.url ? input.url : String(input);
      return new window.Promise(function (ok, fail) {
        var u = resolve(url, location.__href);
        if (u === null) throw new TypeError("fetch: '" + url + "' is not a valid URL");
        var h = {};
        new Headers(init.headers).forEach(function (v, k) {
          h[k] = v;
        });
        var method = String(init.method || 'GET').toUpperCase();
        var body = method === 'GET' || method === 'HEAD' ? null : bodyText(init.body, h);
        request(vu, method, u, h, body, init.operation, init.timeout, function (err, res) {
          if (err) return fail(new TypeError('fetch: ' + (err.message || 'network error') + ' (' + u + ')'));
          ok(new Response(typeof res.body === 'string' ? res.body : '', {
            status: res.statusCode,
            headers: res.headers,
            url: res.url || u,
            redirected: !!res.url && res.url !== u,
          }));
        });
      });
    }

    // camut.browser: page loads into the VU's document.
    var browser = {
      load: function (url, opts, cb) {
        if (typeof opts === 'function') {
          cb = opts;
          opts = undefined;
        }
        opts = opts || {};
        var u = resolve(url, location.__href);
        var p = new window.Promise(function (ok, fail) {
          if (u === null) throw new TypeError("camut.browser.load: '" + url + "' is not a valid URL");
          var h = {};
          new Headers(opts.headers).forEach(function (v, k) {
            h[k] = v;
          });
          var method = String(opts.method || 'GET').toUpperCase();
          var body = opts.body == null ? null : bodyText(opts.body, h);
          request(vu, method, u, h, body, opts.operation, opts.timeout, function (err, res) {
            if (err) return fail(err);
            var referrer = location.__href;
            document.open();
            document.__referrer = referrer === 'about:blank' ? '' : referrer;
            location.__href = res.url || u;
            document.__url = location.__href;
            try {
              document.write(typeof res.body === 'string' ? res.body : '');
              document.close();
            } catch (e) {
              return fail(e);
            }
            if (res.statusCode >= 400) {
              var e = new Error('camut.browser.load: HTTP ' + res.statusCode + ' from ' + u);
              e.statusCode = res.statusCode;
              e.response = res;
              return fail(e);
            }
            ok(document);
          });
        });
        if (typeof cb === 'function') {
          p.then(function (d) {
            cb(null, d);
          }, function (e) {
            cb(e, document);
          });
          return undefined;
        }
        return p;
      },
      jquery: function () {
        return '$' in window && !Object.getOwnPropertyDescriptor(window, '$').get ? window.jQuery : loadJquery(window);
      },
    };
    Object.defineProperty(browser, 'document', { get: function () { return document; }, enumerable: true });
    camut.browser = browser;

    // ---- install ----------------------------------------------------------------
    var globals = {
      document: document,
      location: location,
      navigator: Object.create(NAVIGATOR),
      history: history,
      localStorage: new Storage(),
      sessionStorage: new Storage(),
      screen: { width: 1920, height: 1080, availWidth: 1920, availHeight: 1080, colorDepth: 24, pixelDepth: 24 },
      devicePixelRatio: 1,
      innerWidth: 1920,
      innerHeight: 1080,
      outerWidth: 1920,
      outerHeight: 1080,
      pageXOffset: 0,
      pageYOffset: 0,
      scrollX: 0,
      scrollY: 0,
      name: '',
      closed: false,
      self: window,
      top: window,
      parent: window,
      frames: window,
      frameElement: null,
      opener: null,
      Text: Text,
      Comment: Comment,
      DocumentFragment: DocumentFragment,
      DOMParser: DOMParser,
      XMLHttpRequest: XMLHttpRequest,
      fetch: fetch,
      requestAnimationFrame: function (f) {
        return window.setTimeout(function () {
          f(Date.now());
        }, 16);
      },
      cancelAnimationFrame: function (id) {
        window.clearTimeout(id);
      },
    };
    [WINDOW_CLASSES, WINDOW_FNS, globals].forEach(function (all) {
      Object.keys(all).forEach(function (k) {
        Object.defineProperty(window, k, { value: all[k], writable: true, configurable: true, enumerable: true });
      });
    });
    ['addEventListener', 'removeEventListener', 'dispatchEvent'].forEach(function (k) {
      Object.defineProperty(window, k, { value: EventTarget.prototype[k], writable: true, configurable: true });
    });
    window.onload = window.onerror = null;
    if (settings.jquery) Object.defineProperties(window, JQUERY_GLOBALS);
    return window;
  };
});
