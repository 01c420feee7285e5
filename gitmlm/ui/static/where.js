// The `--where` language in the browser, for the static report's Runs page (no server to ask).
// A port of gitmlm/core/where.py, which stays the language's one definition: the tokens,
// keywords, MLflow spellings and limits come from where.grammar(), written into the page, and
// tests/ui_browser_test.py::test_static_filter_agrees_with_the_python_language runs many
// expressions through both, in Chromium, and compares the runs selected and the error
// messages. Values from the page: a float that JavaScript would spell unlike Python (1.0,
// 1e-05, nan) as Python spells it ({"n": "1.0"}), a list or table as {"o": 1}, anything else
// as JSON.
(function () {
  "use strict";

  // Python's str.isspace(), which `\s` in JavaScript is not quite (\x1c-\x1f, \x85; no BOM).
  var SPACE = /[\t\n\v\f\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]/u;
  var SPACES = new RegExp(SPACE.source, "gu");

  function WhereError(message) { this.message = message; }

  function pyRegex(source, flags) {
    // Python's \w is any Unicode letter or digit, or _; every \w in the grammar is in a class.
    return new RegExp(source.replace(/\\w/g, "\\p{L}\\p{N}_"), "u" + (flags || ""));
  }

  function codepoints(text) { return Array.from(text).length; }

  function pyRepr(text) {
    // repr() of a str, as Python writes it in the error messages.
    var quote = text.indexOf("'") >= 0 && text.indexOf('"') < 0 ? '"' : "'";
    var out = "";
    Array.from(text).forEach(function (ch) {
      var c = ch.codePointAt(0);
      if (ch === "\\" || ch === quote) out += "\\" + ch;
      else if (ch === "\n") out += "\\n";
      else if (ch === "\r") out += "\\r";
      else if (ch === "\t") out += "\\t";
      else if (c < 0x20 || (c >= 0x7f && c < 0xa0)) out += "\\x" + (c < 16 ? "0" : "") + c.toString(16);
      else out += ch;
    });
    return quote + out + quote;
  }

  // difflib.get_close_matches(word, possibilities, n=1, cutoff=0.6): SequenceMatcher's ratio
  // (longest matching blocks, earliest first; no junk: names are far below autojunk's 200).
  function matches(a, b) {
    var b2j = {};
    b.forEach(function (ch, j) { (b2j[ch] = b2j[ch] || []).push(j); });
    function longest(alo, ahi, blo, bhi) {
      var besti = alo, bestj = blo, bestsize = 0, j2len = {};
      for (var i = alo; i < ahi; i++) {
        var next = {}, js = b2j[a[i]] || [];
        for (var x = 0; x < js.length; x++) {
          var j = js[x];
          if (j < blo) continue;
          if (j >= bhi) break;
          var k = next[j] = (j2len[j - 1] || 0) + 1;
          if (k > bestsize) { besti = i - k + 1; bestj = j - k + 1; bestsize = k; }
        }
        j2len = next;
      }
      return [besti, bestj, bestsize];
    }
    var total = 0, queue = [[0, a.length, 0, b.length]];
    while (queue.length) {
      var q = queue.pop(), m = longest(q[0], q[1], q[2], q[3]), i = m[0], j = m[1], k = m[2];
      if (k) {
        total += k;
        if (q[0] < i && q[2] < j) queue.push([q[0], i, q[2], j]);
        if (i + k < q[1] && j + k < q[3]) queue.push([i + k, q[1], j + k, q[3]]);
      }
    }
    return total;
  }

  function closeMatch(word, possibilities) {
    var b = Array.from(word), best = null, bestScore = -1;
    possibilities.forEach(function (x) {
      var a = Array.from(x), length = a.length + b.length;
      var score = length ? 2.0 * matches(a, b) / length : 1.0;
      if (score >= 0.6 && (score > bestScore || (score === bestScore && x > best))) {
        best = x; bestScore = score;
      }
    });
    return best;
  }

  function Language(g) {
    this.g = g;
    this.word = pyRegex(g.word, "y");
    this.quotedName = pyRegex(g.quoted_name, "y");
    this.operator = pyRegex(g.operator, "y");
    this.number = pyRegex(g.number, "y");
    this.numberWhole = pyRegex("^(?:" + g.number + ")$", "");
    this.strings = {};
    for (var q in g.strings) this.strings[q] = pyRegex(g.strings[q], "ys");
    this.escape = pyRegex(g.escape, "gs");
    this.likeToken = pyRegex(g.like_token, "gs");
  }

  Language.prototype.unescape = function (text) {
    var escapes = this.g.escapes;
    return text.replace(this.escape, function (all, ch) {
      return Object.prototype.hasOwnProperty.call(escapes, ch) ? escapes[ch] : all;
    });
  };

  Language.prototype.wordValue = function (word) {
    var v = this.g.words[word];
    if (typeof v === "boolean") return v;
    return v === "nan" ? NaN : v === "inf" ? Infinity : -Infinity;
  };

  Language.prototype.spelled = function (text) {
    // The number or boolean a string spells ('2', '0.1', 'True'), else null.
    if (this.numberWhole.test(text)) return Number(text);
    var low = text.toLowerCase();
    return low === "true" ? true : low === "false" ? false : null;
  };

  // --- the parser: where.py's _Parser, method for method ------------------------------------

  function Parser(lang, text, option) {
    this.lang = lang; this.text = text; this.option = option || "--where"; this.pos = 0; this.depth = 0;
  }

  Parser.prototype.fail = function (what, pos) {
    var at = codepoints(this.text.slice(0, pos === undefined ? this.pos : pos));
    var shown = this.text.replace(SPACES, " ");
    throw new WhereError("bad " + this.option + " expression at column " + (at + 1) + ": " + what +
      "\n" + shown + "\n" + " ".repeat(at) + "^");
  };

  Parser.prototype.match = function (regex) {
    regex.lastIndex = this.pos;
    return regex.exec(this.text);
  };

  Parser.prototype.skip = function () {
    while (this.pos < this.text.length && SPACE.test(this.text[this.pos])) this.pos++;
  };

  Parser.prototype.take = function (literal) {
    this.skip();
    if (this.text.startsWith(literal, this.pos)) { this.pos += literal.length; return true; }
    return false;
  };

  Parser.prototype.keyword = function (words) {
    this.skip();
    var m = this.match(this.lang.word);
    if (m && words.indexOf(m[0].toLowerCase()) >= 0) { this.pos += m[0].length; return m[0].toLowerCase(); }
    return null;
  };

  Parser.prototype.parse = function () {
    this.skip();
    if (this.pos === this.text.length) this.fail("expected an expression, got nothing");
    var expr = this.or_();
    this.skip();
    if (this.pos < this.text.length) {
      if (this.text[this.pos] === ")") this.fail("unbalanced ')': no '(' to close");
      this.fail("expected 'and', 'or' or the end of the expression");
    }
    return expr;
  };

  Parser.prototype.or_ = function () {
    var operands = [this.and_()];
    while (this.keyword(["or"])) operands.push(this.and_());
    return operands.length === 1 ? operands[0] : { t: "or", operands: operands };
  };

  Parser.prototype.and_ = function () {
    var operands = [this.not_()];
    while (this.keyword(["and"])) operands.push(this.not_());
    return operands.length === 1 ? operands[0] : { t: "and", operands: operands };
  };

  Parser.prototype.not_ = function () {
    this.depth++;
    var max = this.lang.g.max_depth;
    if (this.depth > max) this.fail("expected at most " + max + " nested parentheses or 'not's");
    var expr;
    if (this.keyword(["not"])) expr = { t: "not", operand: this.not_() };
    else if (this.take("(")) {
      var opened = codepoints(this.text.slice(0, this.pos));
      expr = this.or_();
      if (!this.take(")")) this.fail("expected ')' to close the '(' at column " + opened);
    } else expr = this.predicate();
    this.depth--;
    return expr;
  };

  Parser.prototype.predicate = function () {
    var column = this.column();
    var negated = this.keyword(["not"]) !== null;
    var word = this.keyword(negated ? ["in", "like", "ilike"] : ["in", "like", "ilike", "is"]);
    if (negated && word === null) this.fail("expected 'in', 'like' or 'ilike' after 'not'");
    if (word === "in") return { t: "in", column: column, values: this.valueList(), negated: negated };
    if (word === "like" || word === "ilike") {
      this.skip();
      var at = this.pos, pattern = this.value();
      if (typeof pattern !== "string") this.fail("expected a quoted pattern after '" + word + "'", at);
      return { t: "like", column: column, pattern: pattern, negated: negated, ignoreCase: word === "ilike" };
    }
    if (word === "is") {
      negated = this.keyword(["not"]) !== null;
      if (!this.keyword(["null"])) this.fail("expected 'null' or 'not null' after 'is'");
      return { t: "null", column: column, negated: negated };
    }
    this.skip();
    var m = this.match(this.lang.operator);
    if (!m) this.fail("expected an operator (= != < <= > >= in, not in, like, ilike, is)");
    var ops = this.lang.g.operators;
    if (!Object.prototype.hasOwnProperty.call(ops, m[0])) this.fail("expected an operator, not the unknown '" + m[0] + "'");
    this.pos += m[0].length;
    return { t: "compare", column: column, op: ops[m[0]], value: this.value() };
  };

  Parser.prototype.column = function () {
    this.skip();
    var segments = [this.segment("expected a column name")];
    while (this.text.startsWith(".", this.pos)) {
      this.pos++;
      segments.push(this.segment("expected a name after '.'"));
    }
    return segments.join(".");
  };

  Parser.prototype.segment = function (expected) {
    var m;
    if (this.text.startsWith("`", this.pos)) {
      m = this.match(this.lang.quotedName);
      if (!m) this.fail("expected the closing ` of this quoted name");
      this.pos += m[0].length;
      return m[1].replace(/``/g, "`");
    }
    if (this.text.startsWith('"', this.pos)) { // MLflow's quoting of a column name
      m = this.match(this.lang.strings['"']);
      if (!m) this.fail('expected the closing " of this quoted name');
      this.pos += m[0].length;
      return this.lang.unescape(m[1]);
    }
    m = this.match(this.lang.word);
    if (!m) this.fail(expected);
    this.pos += m[0].length;
    return m[0];
  };

  Parser.prototype.valueList = function () {
    if (!this.take("(")) this.fail("expected '(' and a list of values after 'in'");
    var values = [this.value()];
    while (!this.take(")")) {
      if (!this.take(",")) this.fail("expected ',' or ')' in the list of values");
      values.push(this.value());
    }
    return values;
  };

  Parser.prototype.value = function () {
    this.skip();
    var q = this.text.slice(this.pos, this.pos + 1), m;
    if (q === "'" || q === '"') {
      m = this.match(this.lang.strings[q]);
      if (!m) this.fail("expected the closing " + q + " of this string");
      this.pos += m[0].length;
      return this.lang.unescape(m[1]);
    }
    m = this.match(this.lang.number);
    if (m) { this.pos += m[0].length; return Number(m[0]); }
    m = this.match(this.lang.word);
    var low = m ? m[0].toLowerCase() : null;
    if (m && Object.prototype.hasOwnProperty.call(this.lang.g.words, low)) {
      this.pos += m[0].length;
      return this.lang.wordValue(low);
    }
    if (m && low === "null") this.fail("expected a value; test for a missing column with 'is null'");
    if (m) this.fail("expected a value; quote strings, as in '" + m[0] + "'");
    this.fail("expected a value (a number, a quoted string, true, false, nan or inf)");
  };

  // --- names: where.canonical, check_column, bind ------------------------------------------

  function own(table, key) { return Object.prototype.hasOwnProperty.call(table, key); }

  Language.prototype.canonical = function (column, known) {
    if (known && known.has(column)) return column;
    var g = this.g, dot = column.indexOf(".");
    if (dot >= 0) {
      var head = column.slice(0, dot), rest = column.slice(dot + 1);
      if (own(g.prefixes, head)) column = g.prefixes[head] + "." + rest;
      else if (g.attribute_prefixes.indexOf(head) >= 0) column = rest;
    }
    return own(g.tags, column) ? g.tags[column] : own(g.attributes, column) ? g.attributes[column] : column;
  };

  Language.prototype.checkColumn = function (column, known, open) {
    if (known.has(column) || open.some(function (p) { return column.startsWith(p); })) return;
    var tail = [];
    known.forEach(function (k) {
      var dot = k.indexOf(".");
      if (k.endsWith("." + column) || (dot >= 0 && k.slice(dot + 1) === column)) tail.push(k);
    });
    var near = tail.length ? tail.sort(function (x, y) { return x < y ? -1 : x > y ? 1 : 0; })[0]
      : closeMatch(column, Array.from(known));
    var hint = near !== null && near !== undefined ? "; did you mean " + near + "?" : "";
    throw new WhereError("unknown column " + pyRepr(column) + " in --where: no run has it" + hint + " " + this.g.columns_hint);
  };

  function lower(v) { return typeof v === "string" ? v.toLowerCase() : v; }

  Language.prototype.bind = function (e, known, open) {
    var self = this;
    if (e.t === "not") return { t: "not", operand: this.bind(e.operand, known, open) };
    if (e.t === "and" || e.t === "or") return { t: e.t, operands: e.operands.map(function (x) { return self.bind(x, known, open); }) };
    var column = this.canonical(e.column, known);
    this.checkColumn(column, known, open);
    var caseless = column === this.g.caseless, out = Object.assign({}, e, { column: column });
    if (e.t === "compare" && caseless) out.value = lower(e.value);
    if (e.t === "in" && caseless) out.values = e.values.map(lower);
    if (e.t === "like") out.ignoreCase = e.ignoreCase || caseless;
    return out;
  };

  // --- evaluation: where.py's _compile ------------------------------------------------------

  function kind(v) {
    if (typeof v === "boolean") return "bool";
    if (typeof v === "number") return "number";
    if (typeof v === "string") return "str";
    return null;
  }

  var TESTS = {
    "=": function (a, b) { return a === b; }, "!=": function (a, b) { return a !== b; },
    "<": function (a, b) { return a < b; }, "<=": function (a, b) { return a <= b; },
    ">": function (a, b) { return a > b; }, ">=": function (a, b) { return a >= b; }
  };

  Language.prototype.comparable = function (got, value, spelled) {
    var k = kind(got);
    if (k === kind(value)) return [got, value];
    if (spelled !== null && k === kind(spelled)) return [got, spelled];
    if (typeof got === "string" && (kind(value) === "number" || kind(value) === "bool")) {
      var again = this.spelled(got);
      if (again !== null && kind(again) === kind(value)) return [again, value];
    }
    return null;
  };

  Language.prototype.likeRegex = function (pattern, ignoreCase) {
    var parts = [];
    pattern.replace(this.likeToken, function (all, escaped, percent, underscore, literal) {
      var text = escaped !== undefined ? escaped : literal;
      parts.push(percent ? "[^]*" : underscore ? "[^]" : text.replace(/[\\^$.*+?()[\]{}|/]/g, "\\$&"));
      return all;
    });
    return new RegExp("^(?:" + parts.join("") + ")$", ignoreCase ? "iu" : "u");
  };

  Language.prototype.compile = function (e) {
    var self = this;
    if (e.t === "compare") {
      var test = TESTS[e.op], value = e.value, spelled = typeof value === "string" ? this.spelled(value) : null;
      return function (row) {
        var got = row.get(e.column);
        if (kind(got) === kind(value)) return test(got, value);
        var pair = self.comparable(got, value, spelled);
        return pair !== null && test(pair[0], pair[1]);
      };
    }
    if (e.t === "in") {
      var members = e.values.map(function (v) { return [v, typeof v === "string" ? self.spelled(v) : null]; });
      if (!e.negated) {
        var groups = {};
        members.forEach(function (m) {
          m.forEach(function (v) {
            if (v !== null && !(typeof v === "number" && isNaN(v))) (groups[kind(v)] = groups[kind(v)] || []).push(v);
          });
        });
        var has = function (v) { return (groups[kind(v)] || []).some(function (x) { return x === v; }); };
        return function (row) {
          var got = row.get(e.column);
          if (kind(got) !== null && has(got)) return true;
          var again = typeof got === "string" ? self.spelled(got) : null;
          return again !== null && has(again);
        };
      }
      return function (row) {
        var got = row.get(e.column);
        for (var i = 0; i < members.length; i++) {
          var pair = self.comparable(got, members[i][0], members[i][1]);
          if (pair === null || pair[0] === pair[1]) return false;
        }
        return true;
      };
    }
    if (e.t === "like") {
      var regex = this.likeRegex(e.pattern, e.ignoreCase);
      return function (row) {
        var got = row.text(e.column);
        return got !== null && (regex.test(got) === !e.negated);
      };
    }
    if (e.t === "null") return function (row) { return (row.get(e.column) === null) !== e.negated; };
    if (e.t === "not") { var inner = this.compile(e.operand); return function (row) { return !inner(row); }; }
    var parts = e.operands.map(function (x) { return self.compile(x); });
    if (e.t === "and") return function (row) { return parts.every(function (p) { return p(row); }); };
    return function (row) { return parts.some(function (p) { return p(row); }); };
  };

  // --- rows as the page carries them ----------------------------------------------------------

  // A row reads its cells as the page carries them (a column index -> value) only when a
  // query asks: nothing is decoded up front, so the first filter of 10,000 runs is quick.
  function Row(index, cells) { this.index = index; this.cells = cells; }
  Row.prototype.raw = function (column) {
    var i = own(this.index, column) ? this.index[column] : -1;
    return i >= 0 && own(this.cells, i) ? this.cells[i] : null;
  };
  Row.prototype.get = function (column) {
    var v = this.raw(column);
    if (v === null || typeof v !== "object") return v;
    if (v.n === undefined) return v; // a list or table: of no kind a query compares
    return v.n === "nan" ? NaN : v.n === "inf" ? Infinity : v.n === "-inf" ? -Infinity : Number(v.n);
  };
  Row.prototype.text = function (column) {
    // What `like` matches: a string, or a number's or boolean's text as Python's str() gives it.
    var v = this.raw(column);
    if (typeof v === "string") return v;
    if (typeof v === "boolean") return v ? "True" : "False";
    if (typeof v === "number") return String(v); // the page sends a float this way only where
    if (v !== null && v.n !== undefined) return v.n; // JavaScript spells it as Python does
    return null;
  };

  // select(text): the run ids that match, or {error}; the same answer as `git mlm runs --where`.
  function Filter(data) {
    this.lang = new Language(data.grammar);
    this.known = new Set(data.known);
    this.open = data.open;
    this.ids = data.rows.map(function (r) { return r[0]; });
    var index = {};
    data.columns.forEach(function (c, i) { index[c] = i; });
    this.rows = data.rows.map(function (r) { return new Row(index, r[1]); });
  }

  Filter.prototype.select = function (text) {
    text = text.replace(new RegExp("^" + SPACE.source + "+|" + SPACE.source + "+$", "gu"), "");
    if (!text) return { ids: this.ids.slice() };
    try {
      var keep = this.lang.compile(this.lang.bind(new Parser(this.lang, text).parse(), this.known, this.open));
      var ids = this.ids;
      return { ids: ids.filter(function (_, i) { return keep(this.rows[i]); }, this) };
    } catch (exc) {
      if (exc instanceof WhereError) return { error: exc.message };
      throw exc;
    }
  };

  window.gitmlmWhere = Filter;
})();
