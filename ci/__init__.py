"""aidetect: ci."""
