"""Qwen2-VL detector: LoRA/QLoRA instruction tuning, one-pass scoring, explanations.

    config.py    QwenConfig (recipes in configs/qwen2vl_*.yaml)
    vision.py    pixel inputs without torchvision
    modeling.py  build_model(cfg): base + (4-bit) + LoRA; prompts; answer-token logits
    data.py      manifest -> cached images, rank-independent batch stream
    train.py     the trainer (single process or torchrun DDP)
    bundle.py    a model version on disk; tracking.py logs/loads it through MLflow
    detector.py  QwenDetector: score / explain
    (its command group, `aidetect qwen ...`, is aidetect/cli_qwen.py: model/ holds no CLI)

Importing this package loads no ML library; the modules import torch/transformers themselves.
"""
