"""The report stage (stage.py): sections, quantization table, network figures, plots and the HTML template."""
