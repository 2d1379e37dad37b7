"""The Census connection's form in Airflow 2's UI, from the declaration Airflow 3.2+ reads (``get_provider_info``)."""

from __future__ import annotations

from typing import Any

from airflow_provider_census.get_provider_info import CONN_FIELDS, UI_FIELD_BEHAVIOUR


class ConnectionForm:
    """What Airflow 2 asks a hook class for to draw its connection form; :class:`~.census.CensusHook` inherits it."""

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        return {
            "hidden_fields": list(UI_FIELD_BEHAVIOUR["hidden-fields"]),
            "relabeling": dict(UI_FIELD_BEHAVIOUR["relabeling"]),
            "placeholders": dict(UI_FIELD_BEHAVIOUR["placeholders"]),
        }

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
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
