"""The sync selector language: every form against a small workspace, every malformed string and its message.

Pure: no emulator, no Airflow task, no fixture. Each row names the selector, and the ids of
the syncs of :data:`SYNCS` it must select, in their order there.
"""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_census.api.errors import CensusError, CensusInputError, rebuild_error
from airflow_provider_census.selectors import (
    FORMS,
    CensusSelectorError,
    Selection,
    SyncFacts,
    parse_selection,
)

SYNCS = (
    SyncFacts(
        id=1,
        label="CRM contacts",
        source_kind="model",
        source_name="dim_users",
        destination_name="Salesforce Prod",
        destination_type="salesforce",
        destination_object="Contact",
    ),
    SyncFacts(
        id=2,
        label="crm_leads",
        source_kind="table",
        source_catalog="PROD",
        source_schema="ANALYTICS",
        source_table="DIM_USERS",
        destination_name="Salesforce Prod",
        destination_type="salesforce",
        destination_object="Lead",
    ),
    SyncFacts(
        id=3,
        label="Braze users",
        source_kind="segment",
        source_name="active_users",
        destination_name="Braze",
        destination_type="braze",
        destination_object="user",
    ),
    SyncFacts(
        id=4,
        label="hubspot_users",
        source_kind="table",
        source_schema="analytics",
        source_table="users",
        destination_type="hubspot",
        destination_object="user",
    ),
    SyncFacts(id=5),
)
"""A model, a table with catalog, a segment, a table without catalog (destination named only by type), and a sync
Census said nothing about."""


def selected(select: Any, exclude: Any = None) -> list[int]:
    return [sync.id for sync in parse_selection(select, exclude).select(SYNCS)]


@pytest.mark.parametrize(
    ("select", "ids"),
    [
        (3, [3]),
        ("3", [3]),
        (" 3 ", [3]),
        ("id:3", [3]),
        ("ID: 3", [3]),
        ("007", []),
        ("4", [4]),
        ("99", []),
        ("label:crm_*", [2]),
        ("label:CRM*", [1, 2]),
        ("label:crm contacts", [1]),
        ("label:*users", [3, 4]),
        ("label:?raze users", [3]),
        ("label:[bh]*", [3, 4]),
        ("label:hubspot", []),
        ("source:dim_users", [1, 2]),
        ("source:DIM_USERS", [1, 2]),
        ("source:dim_*", [1, 2]),
        ("source:active_users", [3]),
        ("source:users", [4]),
        ("source:analytics.dim_users", [2]),
        ("source:analytics.*", [2, 4]),
        ("source:*.users", [4]),
        ("source:prod.analytics.dim_users", [2]),
        ("source:p?od.analytics.dim_users", [2]),
        ("source:*.analytics.users", [4]),
        ("source:dev.analytics.dim_users", []),
        ("source:*.*", [2, 4]),
        ("source:*.*.*", [2, 4]),
        ("source:*", [1, 2, 3, 4, 5]),
        ("destination:salesforce", [1, 2]),
        ("destination:Salesforce Prod", [1, 2]),
        ("destination:salesforce*", [1, 2]),
        ("destination:salesforce/contact", [1]),
        ("destination:salesforce/*", [1, 2]),
        ("destination:*/user", [3, 4]),
        ("destination:hubspot/user", [4]),
        ("destination:braze/contact", []),
        ("destination:*", [1, 2, 3, 4, 5]),
        ("destination:*/*", [1, 2, 3, 4, 5]),
    ],
)
def test_each_form_selects_its_syncs(select: Any, ids: list[int]) -> None:
    assert selected(select) == ids


def test_a_three_part_source_never_matches_a_model_even_with_table_facts() -> None:
    model = SyncFacts(id=9, source_kind="model", source_name="m", source_schema="s", source_table="t")
    assert not parse_selection("source:s.t").matches(model)
    assert not parse_selection("source:*.*.*").matches(model)
    assert not parse_selection("source:t").matches(model)
    assert parse_selection("source:m").matches(model)


def test_a_one_part_source_matches_a_table_by_table_name_not_by_its_schema() -> None:
    table = SyncFacts(id=9, source_kind="TABLE", source_schema="analytics", source_table="orders")
    assert parse_selection("source:orders").matches(table)
    assert not parse_selection("source:analytics").matches(table)


def test_a_source_of_unknown_kind_is_a_table_when_it_names_a_table() -> None:
    table_like = SyncFacts(id=9, source_schema="analytics", source_table="orders")
    named_only = SyncFacts(id=10, source_name="orders")
    selection = parse_selection(["source:analytics.orders"])
    assert selection.select([table_like, named_only]) == [table_like]
    assert parse_selection("source:orders").select([table_like, named_only]) == [table_like, named_only]


def test_unknown_facts_never_match_and_never_crash() -> None:
    unknown = SyncFacts(id=5)
    for text in ("label:*x*", "source:x", "source:a.b", "source:a.b.c", "destination:x", "destination:*/x"):
        assert not parse_selection(text).matches(unknown), text


def test_a_bare_star_part_matches_unknown_facts() -> None:
    unknown = SyncFacts(id=5)
    for text in ("label:*", "source:*", "destination:*"):
        assert parse_selection(text).matches(unknown), text
    assert not parse_selection("label:**").matches(unknown)


def test_source_kind_other_than_known_ones_still_matches_by_name() -> None:
    cohort = SyncFacts(id=9, source_kind="cohort", source_name="churn_risk")
    assert parse_selection("source:churn_*").matches(cohort)


@pytest.mark.parametrize(
    ("select", "exclude", "ids"),
    [
        (["label:crm*", "destination:*/user"], None, [1, 2, 3, 4]),
        ([4, "label:crm*"], None, [1, 2, 4]),
        (["source:dim_users", "1"], None, [1, 2]),
        (["label:*"], ["destination:salesforce"], [3, 4, 5]),
        (["label:*"], "5", [1, 2, 3, 4]),
        (["label:*"], 5, [1, 2, 3, 4]),
        ("source:dim_users", ["source:*.*"], [1]),
        ("destination:*/user", "label:braze*", [4]),
        ("label:crm*", [], [1, 2]),
        ("label:crm*", ["label:crm*"], []),
        ("label:crm*", ("99",), [1, 2]),
    ],
)
def test_union_minus_exclude(select: Any, exclude: Any, ids: list[int]) -> None:
    assert selected(select, exclude) == ids


def test_select_keeps_the_order_it_is_given_not_the_order_of_the_selectors() -> None:
    syncs = list(reversed(SYNCS))
    result = parse_selection(["1", "label:braze*", "4"]).select(syncs)
    assert [sync.id for sync in result] == [4, 3, 1]


def test_select_reads_a_one_shot_iterable() -> None:
    result = parse_selection("label:crm*").select(iter(SYNCS))
    assert [sync.id for sync in result] == [1, 2]


def test_describe_reads_like_the_input() -> None:
    selection = parse_selection([12, " label:CRM_* ", "destination:*/user"], exclude=["id:14"])
    assert selection.describe() == "12, label:CRM_*, destination:*/user excluding id:14"
    assert str(selection) == selection.describe()
    assert str(parse_selection("source:a.b")) == "source:a.b"


def test_selections_are_frozen_hashable_and_equal_by_meaning() -> None:
    first = parse_selection(["12", "label:CRM_*"])
    again = parse_selection(["id:12", "label:crm_*"])
    other = parse_selection(["12", "label:crm_x"])
    assert first == again
    assert hash(first) == hash(again)
    assert first != other
    assert len({first, again, other}) == 2
    with pytest.raises(AttributeError):
        first.include = ()  # type: ignore[misc]


def test_unmatched_names_the_select_strings_that_matched_no_sync_before_exclusion() -> None:
    selection = parse_selection(["label:crm_*", "label:nope_*", "99", "source:dim_users"], exclude="label:crm*")
    assert selection.select(SYNCS) == []
    assert selection.unmatched(SYNCS) == ["label:nope_*", "99"]
    assert selection.unmatched(iter(SYNCS)) == ["label:nope_*", "99"]
    assert selection.unmatched([]) == ["label:crm_*", "label:nope_*", "99", "source:dim_users"]


def test_unmatched_excludes_names_the_exclude_strings_that_matched_no_sync() -> None:
    selection = parse_selection("label:*", exclude=["label:crm_*", "label:tpyo*", "destination:nowhere"])
    assert selection.unmatched_excludes(SYNCS) == ["label:tpyo*", "destination:nowhere"]
    assert selection.unmatched(SYNCS) == []


@pytest.mark.parametrize(
    ("select", "exclude", "source_names", "destinations"),
    [
        ([12, "id:13", "label:crm_*"], None, False, False),
        ("source:dim_users", None, True, False),
        ("source:analytics.dim_users", None, False, False),
        ("source:prod.analytics.*", None, False, False),
        ("source:*", None, False, False),
        ("destination:salesforce", None, False, True),
        ("destination:salesforce/contact", None, False, True),
        ("destination:*/contact", None, False, False),
        ("12", "source:tmp_*", True, False),
        ("12", "destination:braze", False, True),
        (["source:x", "destination:y"], None, True, True),
    ],
)
def test_needs_says_which_lookups_matching_reads(
    select: Any, exclude: Any, source_names: bool, destinations: bool
) -> None:
    selection = parse_selection(select, exclude)
    assert selection.needs_source_names is source_names
    assert selection.needs_destinations is destinations


@pytest.mark.parametrize(
    ("select", "ids"),
    [
        ([12, "id:14", "12"], (12, 14)),
        ("7", (7,)),
        ([12, "label:x"], None),
        ("source:x", None),
    ],
)
def test_explicit_ids_only_when_every_select_string_is_an_id(select: Any, ids: tuple[int, ...] | None) -> None:
    assert parse_selection(select, exclude="label:tmp*").explicit_ids == ids


@pytest.mark.parametrize(
    ("select", "exclude", "phrases"),
    [
        ([], None, ["select is an empty list", "select=['label:crm_*']"]),
        ((), None, ["select is an empty list"]),
        (None, None, ["select must be a selector string, a sync id or a list of them, got NoneType"]),
        ({"label:x"}, None, ["got set"]),
        ({"label": "x"}, None, ["got dict"]),
        ("lable:crm_*", None, ["select 'lable:crm_*'", "unknown prefix 'lable:'", "did you mean label:?"]),
        (["12", "sorce:x"], None, ["select[1] 'sorce:x'", "did you mean source:?"]),
        ("model:dim_users", None, ["unknown prefix 'model:'", "did you mean source:?"]),
        ("tag:nightly", None, ["did you mean label:?"]),
        ("dest:braze", None, ["did you mean destination:?"]),
        ("sync:12", None, ["did you mean id:?"]),
        ("zzz:1", None, ["unknown prefix 'zzz:'"]),
        (":x", None, ["nothing before ':'", "id:, label:, source: or destination:"]),
        ("label:", None, ["'label:' has nothing after 'label:'", "label:crm_*"]),
        ("source: ", None, ["nothing after 'source:'", "source:analytics.dim_users"]),
        ("destination:", None, ["destination:salesforce/contact"]),
        ("id:", None, ["nothing after 'id:'", "id:12"]),
        ("", None, ["select '' is empty", "template probably rendered to nothing"]),
        (["12", "  "], None, ["select[1] '  ' is empty"]),
        ("None", None, ["select 'None' is empty", "rendered to nothing"]),
        ([12, 1.5], None, ["select[1] is a float (1.5)", "integer sync id"]),
        ([None], None, ["select[0] is a NoneType (None)"]),
        ([True], None, ["select[0] is a bool (True)"]),
        ([["12"]], None, ["select[0] is a list"]),
        ([0], None, ["select[0] 0 is not a sync id", "positive integers"]),
        (-3, None, ["select -3 is not a sync id"]),
        ("0", None, ["'0' is not a sync id", "positive integers"]),
        ("-3", None, ["'-3' is not a sync id"]),
        ("1.5", None, ["'1.5' is not a sync id"]),
        ("id:0", None, ["'id:0' is not a sync id"]),
        ("id:abc", None, ["'id:abc' is not a sync id", "id:12"]),
        ("id:-3", None, ["'id:-3' is not a sync id"]),
        ("id:1*", None, ["is not a sync id", "use label:, source: or destination: globs"]),
        ("crm_sync", None, ["'crm_sync' has no prefix and is not a sync id", "label:crm_sync"]),
        ("source:a.b.c.d", None, ["'source:a.b.c.d' has 4 dotted parts", "catalog.schema.table"]),
        ("source:a..b", None, ["empty part between dots"]),
        ("source:.b", None, ["empty part between dots"]),
        ("source:a.b.", None, ["empty part between dots"]),
        ("destination:/user", None, ["names no connection before '/'", "destination:*/user"]),
        ("destination:salesforce/", None, ["names no object after '/'", "destination:salesforce for every"]),
        ("label:crm_* source:dim_users", None, ["holds more than one selector", "its own list item"]),
        ("12 14", None, ["holds more than one selector"]),
        ("12,14", None, ["holds more than one selector"]),
        ("label:a,label:b", None, ["holds more than one selector"]),
        ("['label:a', 'b']", None, ["looks like a list rendered to text", "render_template_as_native_obj"]),
        ("[12]", None, ["looks like a list rendered to text"]),
        ("postgres://host/db/s/t", None, ["is a URI, not a selector", "table_selectors_from_uris"]),
        ("label:x", "", ["exclude '' is empty"]),
        ("label:x", ["1", "lable:y"], ["exclude[1] 'lable:y'", "did you mean label:?"]),
        ("label:x", 2.0, ["exclude must be a selector string", "got float"]),
        ("label:x", [0], ["exclude[0] 0 is not a sync id"]),
    ],
)
def test_malformed_selections_say_what_is_wrong_where(select: Any, exclude: Any, phrases: list[str]) -> None:
    with pytest.raises(CensusSelectorError) as raised:
        parse_selection(select, exclude)
    message = str(raised.value)
    for phrase in phrases:
        assert phrase in message, f"{phrase!r} not in {message!r}"
    assert message.endswith(FORMS)


def test_the_selector_error_is_a_census_input_error_and_a_value_error() -> None:
    with pytest.raises(CensusSelectorError) as raised:
        parse_selection("nope:x")
    assert isinstance(raised.value, CensusInputError)
    assert isinstance(raised.value, CensusError)
    assert isinstance(raised.value, ValueError)


def test_a_trigger_can_rebuild_the_selector_error_by_name() -> None:
    rebuilt = rebuild_error("CensusSelectorError", "select 'x' is bad")
    assert type(rebuilt) is CensusSelectorError
    assert str(rebuilt) == "select 'x' is bad"


def test_label_can_hold_colons_and_source_values_are_trimmed() -> None:
    assert parse_selection("label:a:b").matches(SyncFacts(id=1, label="A:B"))
    assert parse_selection("source: analytics . users ").matches(SYNCS[3])
    assert parse_selection("destination:*/custom_object:deals").matches(
        SyncFacts(id=1, destination_object="custom_object:deals")
    )


def test_an_object_may_hold_a_slash() -> None:
    selection = parse_selection("destination:sheets/book/tab")
    assert selection.matches(SyncFacts(id=1, destination_type="sheets", destination_object="book/tab"))
    assert not selection.matches(SyncFacts(id=1, destination_type="sheets", destination_object="book"))


def test_a_subclass_of_sync_facts_comes_back_as_itself() -> None:
    class Carried(SyncFacts):
        pass

    kept = Carried(id=1, label="x")
    assert parse_selection("label:x").select([kept]) == [kept]
    assert isinstance(parse_selection("1").select([kept])[0], Carried)


def test_a_selection_is_also_built_with_no_excludes() -> None:
    selection = parse_selection("1")
    assert selection == Selection(selection.include)
    assert selection.exclude == ()
