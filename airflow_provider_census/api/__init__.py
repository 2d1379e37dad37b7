"""Census itself: endpoints, run states, typed results, errors and the HTTP clients.

Nothing in this package knows about DAGs or tasks; the hook adapts it to Airflow.
"""
