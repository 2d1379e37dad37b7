"""The Census connection's form in Airflow 2's UI, from the declaration Airflow 3.2+ reads (``get_provider_info``).

Airflow 2 reads the form only from methods defined on the hook class itself (its own
``__dict__``), so :class:`~.census.CensusHook` defines both and hands them to these functions.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_census.get_provider_info import CONN_FIELDS, UI_FIELD_BEHAVIOUR


def ui_field_behaviour() -> dict[str, Any]:
    """Which of Airflow's own fields are hidden, relabelled or hinted at."""
    return {
        "hidden_fields": list(UI_FIELD_BEHAVIOUR["hidden-fields"]),
        "relabeling": dict(UI_FIELD_BEHAVIOUR["relabeling"]),
        "placeholders": dict(UI_FIELD_BEHAVIOUR["placeholders"]),
    }


def connection_form_widgets() -> dict[str, Any]:
    """Airflow 2's form, from the same declaration: text fields (it offers no choices), a checkbox for a flag."""
    from flask_appbuilder.fieldwidgets import BS3TextFieldWidget
    from wtforms import BooleanField, StringField

    return {
        name: BooleanField(spec["label"], description=spec["description"], default=spec["schema"].get("default"))
        if "boolean" in spec["schema"]["type"]
        else StringField(
            spec["label"],
            widget=BS3TextFieldWidget(),
            description=spec["description"],
            default=spec["schema"].get("default"),
        )
        for name, spec in CONN_FIELDS.items()
    }
