"""The quantize stage (stage.py): TFLite variants, conversion, QAT and pruning, LiteRT measurements, metadata, the deploy policy."""
