"""The statistics stage (stage.py): Beam sums (combine.py, vocabulary.py), summaries (summary.py), schema and anomalies (schema.py)."""
