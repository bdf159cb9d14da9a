"""Detector networks. Each builder takes a DetectorSpec and returns an nn.Module giving one logit per image."""

from model.detectors.efficientnet import DetectorSpec, build_network

__all__ = ["DetectorSpec", "build_network"]
