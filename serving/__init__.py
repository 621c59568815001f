"""The model registry the push stage writes, and the HTTP microservice that serves it.

Nothing in this package imports TensorFlow unless asked to (a gs:// registry, or the SavedModel
runtime): the serving image has only LiteRT and numpy.
"""
