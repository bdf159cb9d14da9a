"""aidetect: service."""
