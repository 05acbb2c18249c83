// Starts the vendored GraphiQL against this server's /graphql (no inline script: the page keeps the strict CSP).
(function () {
  "use strict";
  var root = document.getElementById("graphiql");
  var endpoint = root.getAttribute("data-endpoint") || "/graphql";
  // A token the lineage UI was given in this tab (auth on) is used here too; the Headers tab can override it.
  var token = null;
  try {
    token = window.sessionStorage.getItem("liubai.token");
  } catch (e) {
    token = null;
  }
  var fetcher = GraphiQL.createFetcher({ url: endpoint, headers: token ? { Authorization: "Bearer " + token } : undefined });
  var example = [
    "# liubai: which commit, deployed by which pipeline, ran which processes and produced which log lines?",
    "# Each node kind is its own type: `... on Commit { sha }` asks for typed fields (see the Docs tab).",
    "{",
    "  search(text: \"commit\", kinds: [Commit], first: 3) {",
    "    edges { node { id label ... on Commit { sha subject author committedAt } } }",
    "    pageInfo { hasNextPage endCursor }",
    "  }",
    "}",
    "",
  ].join("\n");
  ReactDOM.createRoot(root).render(
    React.createElement(GraphiQL, { fetcher: fetcher, defaultQuery: example, defaultEditorToolsVisibility: true })
  );
})();
