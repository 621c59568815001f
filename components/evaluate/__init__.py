"""The evaluate stage (stage.py): metrics, slices and the blessing gates."""
