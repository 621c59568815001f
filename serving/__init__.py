"""The HTTP microservice that serves the model registry the push stage writes.

It imports nothing from the pipeline, the stages or the model builders: what it shares with
them (the registry layout, model inputs, the tokenizer, LiteRT invocation) is in
edgepipe.contracts. Nothing here imports TensorFlow unless asked to (the SavedModel runtime):
the serving image has only LiteRT, numpy, uvicorn (with h11) and prometheus_client.
"""
