"""The one error every ci step raises when it cannot go on."""


class StepError(RuntimeError):
    """A step cannot go on; the message says why and what to do (one line on the CLI)."""
