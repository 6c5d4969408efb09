// Portico's playground: GraphiQL (vendored, see vendor.sh) plus two sidebar plugins.
// - "Explain": the query plan (each fetch with its subgraph and the request sent) and the
//   cost (estimated with its per-field breakdown, actual, limit) of the operation just
//   run. The fetcher asks for them with `portico-explain: true`; the gateway answers in
//   `extensions.explain` when `[explain]` allows it, and the panel takes them out of the
//   response shown.
// - "Sign in" (when `[playground_sign_in]` is configured): runs the login mutation and
//   puts `Authorization: Bearer <token>` into the Headers tab; "Sign out" removes it.
// - Subscriptions run over a WebSocket (graphql-transport-ws), the Headers tab's entries
//   sent in `connection_init`; each event shows as it arrives.
// Written by hand (no build step, no CDN): React.createElement, GraphiQL's own hooks.
(function () {
  "use strict";
  var h = React.createElement;
  var configElement = document.getElementById("portico-playground-config");
  var config = configElement ? JSON.parse(configElement.textContent) : {};
  var url = window.location.origin + window.location.pathname;
  var baseHeaders = { "portico-csrf": "1" };
  var base = GraphiQL.createFetcher({ url: url, headers: baseHeaders });

  // The last explanation, shared by the fetcher and the panel.
  var store = { value: null, listeners: [] };
  function publish(value) {
    store.value = value;
    store.listeners.forEach(function (listener) { listener(value); });
  }
  function useLastExplanation() {
    var state = React.useState(store.value);
    React.useEffect(function () {
      var listener = function (value) { state[1](value); };
      store.listeners.push(listener);
      return function () {
        store.listeners = store.listeners.filter(function (l) { return l !== listener; });
      };
    }, []);
    return state[0];
  }

  // Takes `extensions.explain` out of one result for the panel.
  function strip(result) {
    if (!result || typeof result !== "object" || Array.isArray(result)) return result;
    var extensions = result.extensions;
    var explanation = extensions && extensions.explain ? extensions.explain : null;
    publish({ explanation: explanation, errors: result.errors || null });
    if (!explanation) return result;
    var rest = Object.assign({}, extensions);
    delete rest.explain;
    var shown = Object.assign({}, result);
    if (Object.keys(rest).length) shown.extensions = rest; else delete shown.extensions;
    return shown;
  }

  // ---- Subscriptions over a WebSocket (graphql-transport-ws) ----

  function isSubscription(params) {
    try {
      var doc = GraphiQL.GraphQL.parse(params.query);
      var ops = doc.definitions.filter(function (d) { return d.kind === "OperationDefinition"; });
      var op = params.operationName
        ? ops.find(function (d) { return d.name && d.name.value === params.operationName; })
        : ops[0];
      return !!op && op.operation === "subscription";
    } catch (_) {
      return false;
    }
  }

  // One subscription on its own connection; the Headers tab's entries go in
  // `connection_init` (browsers cannot set headers on a WebSocket). Results arrive as an
  // async iterable, which GraphiQL shows one after the other; stopping closes the socket.
  function subscribeOverWebSocket(params, headers) {
    var queue = [];
    var waiting = null;
    var finished = false;
    var socket = new WebSocket(url.replace(/^http/, "ws"), "graphql-transport-ws");
    function push(value) {
      if (finished) return;
      if (waiting) { var w = waiting; waiting = null; w({ value: value, done: false }); }
      else queue.push(value);
    }
    function finish() {
      if (finished) return;
      finished = true;
      if (waiting) { var w = waiting; waiting = null; w({ value: undefined, done: true }); }
      try { socket.close(1000); } catch (_) {}
    }
    socket.onopen = function () {
      socket.send(JSON.stringify({ type: "connection_init", payload: headers || {} }));
    };
    socket.onmessage = function (event) {
      var m;
      try { m = JSON.parse(event.data); } catch (_) { return; }
      if (m.type === "connection_ack") {
        socket.send(JSON.stringify({ id: "1", type: "subscribe", payload: {
          query: params.query, operationName: params.operationName, variables: params.variables } }));
      } else if (m.type === "ping") {
        socket.send(JSON.stringify({ type: "pong" }));
      } else if (m.type === "next") {
        push(m.payload);
      } else if (m.type === "error") {
        push({ errors: m.payload });
        finish();
      } else if (m.type === "complete") {
        finish();
      }
    };
    socket.onclose = function (event) {
      if (!finished && event.code !== 1000) {
        push({ errors: [{ message: "connection closed: " + event.code + " " + event.reason }] });
      }
      finish();
    };
    var iterator = {
      next: function () {
        if (queue.length) return Promise.resolve({ value: queue.shift(), done: false });
        if (finished) return Promise.resolve({ value: undefined, done: true });
        return new Promise(function (resolve) { waiting = resolve; });
      },
      return: function () {
        finish();
        return Promise.resolve({ value: undefined, done: true });
      },
    };
    iterator[Symbol.asyncIterator] = function () { return iterator; };
    return iterator;
  }

  function fetcher(params, options) {
    if (params && params.query && isSubscription(params)) {
      return subscribeOverWebSocket(params, (options && options.headers) || {});
    }
    var schemaFetch = params && params.operationName === "IntrospectionQuery";
    if (!config.explain || schemaFetch) return base(params, options);
    var opts = Object.assign({}, options || {});
    opts.headers = Object.assign({}, opts.headers || {}, { "portico-explain": "true" });
    return Promise.resolve(base(params, opts)).then(function (result) {
      // GraphiQL's fetcher reads responses as a stream of results (it accepts
      // incremental delivery): map each one.
      if (result && typeof result[Symbol.asyncIterator] === "function") {
        return (async function* () {
          for await (var part of result) yield strip(part);
        })();
      }
      return strip(result);
    });
  }

  // ---- Explain panel ----

  function segment(s) {
    if (s === "List") return "@";
    if (s && typeof s === "object" && "Key" in s) return s.Key;
    if (s && typeof s === "object" && "TypeCondition" in s) return "|[" + s.TypeCondition.join(",") + "]";
    return String(s);
  }
  function pathText(path) { return (path || []).map(segment).join("."); }

  // Subgraph operations are sent minified; shown printed (graphql-js, inside GraphiQL).
  function pretty(operation) {
    try {
      return GraphiQL.GraphQL.print(GraphiQL.GraphQL.parse(operation));
    } catch (_) {
      return operation;
    }
  }

  function Fetch(props) {
    var node = props.node;
    var batches = node.entityBatches || [];
    return h("div", { className: "portico-fetch" },
      h("div", { className: "portico-fetch-head" },
        h("span", { className: "portico-kind" }, props.kind),
        " ",
        h("span", { className: "portico-subgraph", title: "subgraph" }, node.serviceName),
        node.requires ? h("span", { className: "portico-note" }, " entities") : null,
        batches.length ? h("span", { className: "portico-note" },
          " " + batches.length + " batches: " + batches.map(function (b) { return pathText(b.path); }).join(", ")) : null),
      h("pre", { className: "portico-operation" }, pretty(node.operation)));
  }

  // A plan tree is small (bounded by the operation's depth), so plain recursion is fine.
  function PlanNode(props) {
    var node = props.node;
    if (!node) return null;
    switch (node.kind) {
      case "Fetch":
        return h(Fetch, { node: node, kind: "Fetch" });
      case "BatchFetch":
        return h(Fetch, { node: node, kind: "BatchFetch" });
      case "Flatten":
        return h("div", { className: "portico-group" },
          h("div", { className: "portico-group-head" }, h("span", { className: "portico-kind" }, "Flatten"), " ", h("code", null, pathText(node.path))),
          h("div", { className: "portico-children" }, h(PlanNode, { node: node.node })));
      case "Sequence":
      case "Parallel":
        return h("div", { className: "portico-group" },
          h("div", { className: "portico-group-head" }, h("span", { className: "portico-kind" }, node.kind),
            h("span", { className: "portico-note" }, " " + node.nodes.length + " steps")),
          h("div", { className: "portico-children" }, node.nodes.map(function (child, i) {
            return h(PlanNode, { key: i, node: child });
          })));
      case "Condition":
        return h("div", { className: "portico-group" },
          h("div", { className: "portico-group-head" }, h("span", { className: "portico-kind" }, "Condition"), " ", h("code", null, "$" + node.condition)),
          h("div", { className: "portico-children" },
            node.ifClause ? h("div", null, h("span", { className: "portico-note" }, "if true"), h(PlanNode, { node: node.ifClause })) : null,
            node.elseClause ? h("div", null, h("span", { className: "portico-note" }, "if false"), h(PlanNode, { node: node.elseClause })) : null));
      default:
        return h("pre", null, JSON.stringify(node, null, 2));
    }
  }

  function countFetches(node) {
    var stack = node ? [node] : [];
    var n = 0;
    while (stack.length) {
      var next = stack.pop();
      if (next.kind === "Fetch" || next.kind === "BatchFetch") n += 1;
      if (next.nodes) stack.push.apply(stack, next.nodes);
      if (next.node) stack.push(next.node);
      if (next.ifClause) stack.push(next.ifClause);
      if (next.elseClause) stack.push(next.elseClause);
    }
    return n;
  }

  function number(n) {
    if (n === null || n === undefined) return "–";
    return Number.isInteger(n) ? String(n) : n.toFixed(2);
  }

  function Cost(props) {
    var cost = props.cost;
    var rows = cost.breakdown || [];
    return h("div", { className: "portico-cost" },
      h("table", { className: "portico-cost-totals" }, h("tbody", null,
        h("tr", null, h("th", null, "estimated"), h("td", { "data-cost": "estimated" }, number(cost.estimated))),
        h("tr", null, h("th", null, "actual"), h("td", { "data-cost": "actual" }, number(cost.actual))),
        h("tr", null, h("th", null, "limit (max_cost)"), h("td", null, number(cost.max))))),
      rows.length ? h("table", { className: "portico-cost-breakdown" },
        h("thead", null, h("tr", null, h("th", null, "cost"), h("th", null, "field"), h("th", null, "size"), h("th", null, "priced as"))),
        h("tbody", null, rows.map(function (row, i) {
          var depth = (row.path.match(/\./g) || []).length;
          var key = row.path.split(".").pop();
          return h("tr", { key: i },
            h("td", { className: "portico-num" }, number(row.cost)),
            h("td", { style: { paddingLeft: (0.3 + depth * 0.9) + "em" } }, key),
            h("td", { className: "portico-num" }, row.multiplier === 1 ? "" : "×" + number(row.multiplier)),
            h("td", null, h("code", null, row.coordinate)));
        }))) : null,
      cost.breakdownTruncated ? h("p", { className: "portico-note" }, "(breakdown truncated)") : null);
  }

  function ExplainPanel() {
    var last = useLastExplanation();
    var body;
    if (!config.explain) {
      body = h("p", null, "This gateway does not explain operations: see [explain] in its configuration.");
    } else if (!last) {
      body = h("p", null, "Run an operation: its query plan and cost appear here.");
    } else if (!last.explanation) {
      body = h("p", null, "The last response carried no explanation (refused before planning, or your token lacks the scope [explain] requires).");
    } else {
      var e = last.explanation;
      var fetches = countFetches(e.plan && e.plan.node);
      body = h("div", null,
        h("h3", null, "Query plan ", h("span", { className: "portico-note" }, fetches + (fetches === 1 ? " subgraph request" : " subgraph requests"))),
        e.plan && e.plan.node ? h(PlanNode, { node: e.plan.node }) : h("p", null, "Nothing to fetch: answered by the gateway."),
        h("details", null, h("summary", null, "as text"), h("pre", { className: "portico-operation" }, e.planText)),
        h("h3", null, "Cost"),
        h(Cost, { cost: e.cost }));
    }
    return h("div", { className: "portico-explain" },
      h("div", { className: "graphiql-doc-explorer-title" }, "Explain"), body);
  }

  function ExplainIcon() {
    return h("svg", { viewBox: "0 0 24 24", width: 24, height: 24, fill: "none", stroke: "currentColor", strokeWidth: 1.5, "aria-hidden": "true" },
      h("rect", { x: 3, y: 3, width: 7, height: 5, rx: 1 }),
      h("rect", { x: 14, y: 10, width: 7, height: 5, rx: 1 }),
      h("rect", { x: 14, y: 17, width: 7, height: 5, rx: 1 }),
      h("path", { d: "M6.5 8v4.5H14M6.5 12.5v7H14" }));
  }

  // ---- Sign in ----

  function dig(value, path) {
    return path.split(".").reduce(function (v, key) { return v && typeof v === "object" ? v[key] : undefined; }, value);
  }

  function readHeaders(editor) {
    var text = editor ? editor.getValue() : "";
    if (!text.trim()) return {};
    try {
      var parsed = JSON.parse(text);
      return parsed && typeof parsed === "object" && !Array.isArray(parsed) ? parsed : {};
    } catch (_) {
      return null;
    }
  }

  function SignInPanel() {
    var editors = GraphiQL.React.useEditorContext({ nonNull: true });
    var username = React.useState("");
    var password = React.useState("");
    var status = React.useState("");
    var busy = React.useState(false);

    function withAuthorization(token) {
      var headers = readHeaders(editors.headerEditor);
      if (headers === null) {
        status[1]("The Headers tab does not hold a JSON object; fix it first.");
        return false;
      }
      Object.keys(headers).forEach(function (k) { if (k.toLowerCase() === "authorization") delete headers[k]; });
      if (token) headers.Authorization = "Bearer " + token;
      if (editors.headerEditor) editors.headerEditor.setValue(Object.keys(headers).length ? JSON.stringify(headers, null, 2) : "{}");
      return true;
    }

    function submit(event) {
      event.preventDefault();
      busy[1](true);
      status[1]("Signing in…");
      fetch(url, {
        method: "POST",
        headers: Object.assign({ "content-type": "application/json", accept: "application/json" }, baseHeaders),
        body: JSON.stringify({ query: config.signIn.mutation, variables: { username: username[0], password: password[0] } }),
      }).then(function (response) { return response.json(); }).then(function (result) {
        var token = dig(result.data, config.signIn.tokenPath);
        if (typeof token !== "string" || !token) {
          var message = result.errors && result.errors.length ? result.errors[0].message : "no token in the response";
          status[1]("Sign-in failed: " + message);
          return;
        }
        if (withAuthorization(token)) {
          password[1]("");
          status[1]("Signed in as " + username[0] + ": the token is in the Headers tab.");
        }
      }).catch(function (error) {
        status[1]("Sign-in failed: " + error.message);
      }).finally(function () { busy[1](false); });
    }

    function signOut() {
      if (withAuthorization(null)) {
        status[1]("Signed out: the Authorization header is gone.");
      }
    }

    return h("div", { className: "portico-sign-in" },
      h("div", { className: "graphiql-doc-explorer-title" }, "Sign in"),
      h("form", { onSubmit: submit },
        h("label", null, "Username", h("input", { name: "username", autoComplete: "username", value: username[0], onChange: function (e) { username[1](e.target.value); } })),
        h("label", null, "Password", h("input", { name: "password", type: "password", autoComplete: "current-password", value: password[0], onChange: function (e) { password[1](e.target.value); } })),
        h("div", { className: "portico-buttons" },
          h("button", { type: "submit", className: "graphiql-button", disabled: busy[0] || !username[0] || !password[0] }, "Sign in"),
          h("button", { type: "button", className: "graphiql-button", onClick: signOut }, "Sign out"))),
      status[0] ? h("p", { className: "portico-status", role: "status" }, status[0]) : null,
      h("p", { className: "portico-note" }, "The token is kept only in the Headers tab of this page (headers are not persisted)."));
  }

  function SignInIcon() {
    return h("svg", { viewBox: "0 0 24 24", width: 24, height: 24, fill: "none", stroke: "currentColor", strokeWidth: 1.5, "aria-hidden": "true" },
      h("circle", { cx: 12, cy: 8, r: 4 }),
      h("path", { d: "M4 21c0-4 3.6-7 8-7s8 3 8 7" }));
  }

  var plugins = [{ title: "Explain", icon: ExplainIcon, content: ExplainPanel }];
  if (config.signIn) plugins.push({ title: "Sign in", icon: SignInIcon, content: SignInPanel });

  var root = ReactDOM.createRoot(document.getElementById("graphiql"));
  root.render(h(GraphiQL, {
    fetcher: fetcher,
    plugins: plugins,
    isHeadersEditorEnabled: true,
    shouldPersistHeaders: false,
    defaultEditorToolsVisibility: "headers",
    defaultHeaders: "{}"
  }));
})();
