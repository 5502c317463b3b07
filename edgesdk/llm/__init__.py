"""Causal language models: import (transformers module, model directory, GGUF) into a decoder graph with
an explicit KV cache, text data, evaluation (perplexity, agreement, KL) and generation."""
