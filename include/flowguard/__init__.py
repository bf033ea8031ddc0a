"""flowguard: keep a network-intrusion classifier healthy in production.

One module per pipeline stage; the Airflow DAGs in ``dags/`` call these functions and pass
paths, ids and metrics between tasks, never data.
"""

__version__ = "0.1.0"
