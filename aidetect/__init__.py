"""aidetect: tells whether an image was made by AI.

The packages `model`, `service`, `ci` and `infra` hold the work; this package holds what
they share: the settings object and the `aidetect` command line.
"""

__version__ = "0.1.0"
