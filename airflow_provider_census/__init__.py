"""Apache Airflow provider for Census (Fivetran Activations).

Kept import-free on purpose: Airflow imports provider packages while parsing DAG files,
so nothing here may pull in the HTTP clients or Airflow itself.
"""

__version__ = "3.0.0"
