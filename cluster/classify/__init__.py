"""Crop-type classification: season features, models, training, prediction, accuracy."""
