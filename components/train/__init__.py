"""The train stage (stage.py): input spec, model builder, strategy, fit with resume and progress, export."""
