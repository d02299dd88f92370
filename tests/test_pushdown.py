"""What a GraphQL upstream is sent: the operation's document cut down to the client's selection."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from graphql import FieldNode, FragmentDefinitionNode, OperationDefinitionNode, build_schema, parse

from aggregator.upstreams.forward import Exposed
from aggregator.upstreams.pushdown import Cut, DocumentCutter
from aggregator.upstreams.selection import ClientSelection

SCHEMA = build_schema("""
    interface Node { id: ID! }
    type User implements Node { id: ID! name: String email: String friends(first: Int): [User] }
    type Repo implements Node { id: ID! name: String owner: User stars: Int }
    union SearchResult = User | Repo
    type Query {
      user(id: ID!): User
      node(id: ID!): Node
      search(q: String!, first: Int): [SearchResult]
    }
""")

USER = """
query User($id: ID!, $first: Int) {
  user(id: $id) { id name email friends(first: $first) { id name } }
}
"""


def selection(client: str, variables: dict[str, Any] | None = None) -> ClientSelection:
    """The client's selection of the first root field of ``client``, as the schema layer hands it down."""
    document = parse(client)
    operation = next(d for d in document.definitions if isinstance(d, OperationDefinitionNode))
    root = operation.selection_set.selections[0]
    assert isinstance(root, FieldNode)
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    return ClientSelection([root], fragments, variables or {}, operation.variable_definitions or ())


def cutter(
    document: str = USER, *, select: str | None = "user", keep: Sequence[Sequence[str]] = ()
) -> DocumentCutter:
    made = DocumentCutter()
    made.add("op", parse(document), None, select)
    made.use_schema(SCHEMA)
    if keep:
        made.keep("op", keep)
    return made


def flat(cut: Cut) -> str:
    return " ".join(cut.query.split())


def sent(document: str, client: str, *, select: str | None = "user", **variables: Any) -> str:
    return flat(cutter(document, select=select).cut("op", selection(client, variables)))


def test_a_narrow_selection_sends_only_its_fields() -> None:
    """`{ id name }` sends `{ id name }`, and the variables the cut fields no longer use go too."""
    assert sent(USER, "{ gw { id name } }") == "query User($id: ID!) { user(id: $id) { id name } }"


def test_a_nested_selection_keeps_its_arguments_and_variables() -> None:
    """A nested field keeps the document's arguments, and the variables they use stay defined."""
    assert sent(USER, "{ gw { friends { name } } }") == (
        "query User($id: ID!, $first: Int) { user(id: $id) { friends(first: $first) { name } } }"
    )


def test_the_documents_aliases_are_sent_the_clients_are_not() -> None:
    """Gateway fields are the document's response keys: its aliases stay; the client's stay at the gateway."""
    document = "query { user(id: 1) { handle: name email } }"
    assert sent(document, "{ gw { shown: handle } }") == "{ user(id: 1) { handle: name } }"


def test_client_fragments_and_inline_fragments_are_merged() -> None:
    """Fields selected through a named fragment and an inline fragment are all sent."""
    client = "{ gw { ...F ... on User { email } } } fragment F on User { id }"
    assert sent(USER, client) == "query User($id: ID!) { user(id: $id) { id email } }"


def test_document_fragments_are_inlined_and_cut() -> None:
    """A fragment of the document is cut like its other selections; an emptied fragment is dropped."""
    document = """
        query { user(id: 1) { ...Main ...Extra } }
        fragment Main on User { id name }
        fragment Extra on User { email }
    """
    assert sent(document, "{ gw { name } }") == "{ user(id: 1) { ... on User { name } } }"


@pytest.mark.parametrize(
    ("client", "variables", "expected"),
    [
        ("{ gw { id name @include(if: $more) } }", {"more": True}, "{ id name }"),
        ("{ gw { id name @include(if: $more) } }", {"more": False}, "{ id }"),
        ("{ gw { id ... @skip(if: $less) { name } } }", {"less": True}, "{ id }"),
        ("{ gw { id name @skip(if: false) } }", {}, "{ id name }"),
    ],
)
def test_skip_and_include_are_evaluated_with_the_clients_variables(
    client: str, variables: dict[str, Any], expected: str
) -> None:
    """@skip/@include decide, with the client's values, whether a field is sent."""
    assert sent(USER, client, **variables) == f"query User($id: ID!) {{ user(id: $id) {expected} }}"


def test_the_documents_own_directives_and_their_variables_stay() -> None:
    """A directive the document writes is the upstream's business: kept, with its variable."""
    document = "query U($full: Boolean!) { user(id: 1) { id email @include(if: $full) } }"
    assert sent(document, "{ gw { email } }") == (
        "query U($full: Boolean!) { user(id: 1) { email @include(if: $full) } }"
    )


def test_typename_is_added_to_interface_selections() -> None:
    """The gateway resolves an interface's concrete type from the `__typename` it asks for."""
    document = "query { node(id: 1) { id ... on User { name } ... on Repo { stars } } }"
    assert sent(document, "{ gw { ... on User { name } } }", select="node") == (
        "{ node(id: 1) { __typename ... on User { name } } }"
    )


def test_typename_is_added_to_union_selections() -> None:
    """A union's selection asks for `__typename` too, and a branch the client did not select is cut."""
    document = 'query { search(q: "x") { ... on User { id name } ... on Repo { id stars } } }'
    assert sent(document, "{ gw { ... on Repo { stars } } }", select="search") == (
        '{ search(q: "x") { __typename ... on Repo { stars } } }'
    )


def test_select_keeps_only_the_path_to_the_selected_field() -> None:
    """With `select:`, fields off the path are not sent; the client's selection applies below it."""
    document = "query { user(id: 1) { id name friends(first: 2) { id name email } } }"
    assert sent(document, "{ gw { email } }", select="user.friends") == (
        "{ user(id: 1) { friends(first: 2) { email } } }"
    )


def test_several_root_fields_without_select_are_cut_too() -> None:
    """With no `select:` the field is the whole `data`: root fields the client did not select go."""
    document = "query { user(id: 1) { id } node(id: 2) { id } }"
    assert sent(document, "{ gw { user { id } } }", select=None) == "{ user(id: 1) { id } }"


def test_no_selection_sends_the_whole_subtree() -> None:
    """A library call, or a leaf or JSON field, has no client selection: everything at the path is sent."""
    cut = cutter().cut("op", None)
    assert flat(cut) == (
        "query User($id: ID!, $first: Int) "
        "{ user(id: $id) { id name email friends(first: $first) { id name } } }"
    )


def test_a_selection_of_nothing_the_document_has_asks_for_typename() -> None:
    """A selection set is never sent empty."""
    assert sent(USER, "{ gw { __typename } }") == "query User($id: ID!) { user(id: $id) { __typename } }"


def test_kept_fields_are_sent_whatever_the_client_selected() -> None:
    """Keys the gateway reads itself are always sent, next to the client's selection."""
    cut = cutter(keep=[("id",), ("friends", "id")]).cut("op", selection("{ gw { name } }"))
    assert flat(cut) == (
        "query User($id: ID!, $first: Int) { user(id: $id) { id name friends(first: $first) { id } } }"
    )


def test_a_kept_field_the_document_lacks_is_added() -> None:
    """A key the document does not select is asked for by its name."""
    cut = cutter("query { user(id: 1) { name } }", keep=[("id",)]).cut("op", selection("{ gw { name } }"))
    assert flat(cut) == "{ user(id: 1) { name id } }"


@pytest.mark.parametrize(
    ("path", "reported"),
    [
        (["user", "name"], True),
        (["user", "friends", 0, "name"], True),
        (["user"], True),
        ([], True),
        (["user", "id"], False),
        (["user", "friends", 1, "id"], False),
        (["node", "id"], False),
    ],
)
def test_errors_reach_the_client_only_at_what_it_selected(path: list[str | int], reported: bool) -> None:
    """An upstream error at a kept key or anywhere else the client did not select is not reported."""
    cut = cutter(keep=[("id",), ("friends", "id")]).cut("op", selection("{ gw { name friends { name } } }"))
    assert cut.reports(path) is reported


def test_the_same_client_nodes_reuse_their_cut() -> None:
    """Once warm, a request's nodes find their cut: the same object, not a new one."""
    made = cutter()
    client = selection("{ gw { id name } }")
    assert made.cut("op", client) is made.cut("op", ClientSelection(client.nodes, {}, {}))


def test_equal_selections_from_different_requests_share_one_cut() -> None:
    """Two request texts selecting the same fields share one cut document."""
    made = cutter()
    first = made.cut("op", selection("{ gw { id name } }"))
    assert made.cut("op", selection("query Other { x: gw { name id ...on User { id } } }")) is first


def test_skip_variables_make_a_cut_per_value() -> None:
    """The same nodes with another @include value get another cut, and each value keeps its own."""
    made = cutter()
    client = selection("{ gw { id name @include(if: $more) } }")
    more = made.cut("op", ClientSelection(client.nodes, {}, {"more": True}))
    less = made.cut("op", ClientSelection(client.nodes, {}, {"more": False}))
    assert (flat(more), flat(less)) == (
        "query User($id: ID!) { user(id: $id) { id name } }",
        "query User($id: ID!) { user(id: $id) { id } }",
    )
    assert made.cut("op", ClientSelection(client.nodes, {}, {"more": True})) is more


def test_the_cache_is_bounded() -> None:
    """Distinct selections beyond the bound evict the oldest instead of growing without end."""
    made = DocumentCutter(max_cuts=2)
    made.add("op", parse(USER), None, "user")
    first = selection("{ gw { id } }")
    cut = made.cut("op", first)
    made.cut("op", selection("{ gw { name } }"))
    made.cut("op", selection("{ gw { email } }"))
    assert made.cut("op", first) is not cut


EXPOSED_SCHEMA = build_schema("""
    interface Node { id: ID! }
    type User implements Node { id: ID! name: String friends(first: Int = 2, after: String): [User] }
    type Repo implements Node { id: ID! name: String stars: Int }
    union SearchResult = User | Repo
    type Query {
      user(id: ID!): User
      search(q: String!, first: Int! = 10): [SearchResult]
      count: Int
    }
""")


def exposed(field: str, client: str, variables: dict[str, Any] | None = None, **names: str) -> Cut:
    """The cut of the exposed root field ``field`` for the client's query ``client``."""
    made = DocumentCutter()
    made.expose("op", Exposed("query", field))
    made.use_schema(EXPOSED_SCHEMA, names)
    return made.cut("op", selection(client, variables))


def test_an_exposed_field_forwards_the_clients_selection_with_its_aliases_and_arguments() -> None:
    """Aliases and arguments below the root field go upstream as the client wrote them."""
    cut = exposed("user", '{ gw_user(id: "1") { id handle: name friends(first: 5) { name } } }')
    assert flat(cut) == (
        "query Query_user($id: ID!) { user(id: $id) { id handle: name friends(first: 5) { name } } }"
    )
    assert cut.params == {"id": "id"}


def test_an_exposed_fields_arguments_with_defaults_are_nullable_variables() -> None:
    """An argument the client leaves out is not sent, so the upstream applies its own default."""
    cut = exposed("search", '{ gw_search(q: "x") { ... on Repo { stars } } }')
    assert flat(cut) == (
        "query Query_search($q: String!, $first: Int) "
        "{ search(q: $q, first: $first) { __typename ... on Repo { stars } } }"
    )


def test_the_clients_variables_below_the_root_are_forwarded_with_their_definitions() -> None:
    """A client variable used in a nested argument is declared and sent; one named like an argument
    leaves the argument's variable another name."""
    client = 'query Q($id: ID!, $n: Int) { gw_user(id: "1") { friends(first: $n, after: $id) { id } } }'
    cut = exposed("user", client, {"n": 3, "id": "c"})
    assert flat(cut) == (
        "query Query_user($id_: ID!, $id: ID!, $n: Int) "
        "{ user(id: $id_) { friends(first: $n, after: $id) { id } } }"
    )
    assert cut.params == {"id": "id_"}
    assert cut.client_variables == {"n", "id"}


def test_an_exposed_selection_inlines_fragments_in_the_upstreams_type_names() -> None:
    """Fragments become inline fragments on the upstream's type, renamed back from the gateway's name."""
    client = '{ gw_search(q: "x") { ...R ... on gh_User { name } } } fragment R on Repo { stars }'
    cut = exposed("search", client, gh_User="User")
    assert flat(cut) == (
        "query Query_search($q: String!, $first: Int) { search(q: $q, first: $first) "
        "{ __typename ... on Repo { stars } ... on User { name } } }"
    )


def test_an_exposed_selection_evaluates_skip_and_include() -> None:
    """@skip/@include are decided at the gateway and not sent."""
    client = 'query Q($more: Boolean!) { gw_user(id: "1") { id name @include(if: $more) } }'
    assert flat(exposed("user", client, {"more": False})) == (
        "query Query_user($id: ID!) { user(id: $id) { id } }"
    )


def test_an_exposed_leaf_field_has_no_selection() -> None:
    """A root field of a scalar type is sent bare."""
    assert flat(exposed("count", "{ gw_count }")) == "query Query_count { count }"
