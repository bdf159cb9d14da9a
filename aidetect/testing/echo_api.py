"""A LitServe API with no model, for tests of how the service drives LitServe (service/litserve_compat.py).

Its worker runs in a spawned process, so it must be importable by name: a class inside a test module is not.
"""

from __future__ import annotations

import litserve as ls


class EchoAPI(ls.LitAPI):
    """Answers {"data": x} with {"twice": 2x, "batch": how many requests shared the forward pass}."""

    def setup(self, device) -> None:
        pass

    def decode_request(self, request):
        return request["data"]

    def batch(self, inputs):
        return list(inputs)

    def predict(self, x):
        xs = x if isinstance(x, list) else [x]
        out = [{"twice": 2 * v, "batch": len(xs)} for v in xs]
        return out if isinstance(x, list) else out[0]

    def unbatch(self, output):
        return output

    def encode_response(self, output):
        return output
