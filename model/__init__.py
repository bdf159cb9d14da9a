"""aidetect: model."""
