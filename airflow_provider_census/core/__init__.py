"""The pure core of waiting: no Airflow and no HTTP; what the triggers and the tasks share."""
