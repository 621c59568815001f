"""The ingest stage (stage.py): Beam reads raw records of any source (sources/), checks, splits and encodes them (records.py)."""
