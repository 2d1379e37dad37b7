"""System tests: real Airflow components (scheduler, triggerer, ...) as subprocesses, against the emulator."""
