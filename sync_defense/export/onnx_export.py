"""Checkpoint -> three ONNX graphs (weights inside, dynamic batch axis), checked against PyTorch.

    python -m sync_defense.export.onnx_export --checkpoint checkpoints/tiny.pt --out build/onnx
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import torch
from torch import nn

from sync_defense import preprocessing
from sync_defense.artifacts import CHECKPOINT, SAMPLE_VIDEO
from sync_defense.contract import MAX_BATCH, ModelSpec, graph_specs
from sync_defense.model.checkpoint import served_model
from sync_defense.model.network import SyncDetector, graph_modules
from sync_defense.preprocessing import DEFAULT_CONFIG

from .parity import onnx_against_torch, random_inputs

LOG = logging.getLogger(__name__)
OPSET = 18


def export_graph(module: nn.Module, spec: ModelSpec, path: Path, max_batch: int) -> None:
    """One ONNX file with every weight inside it and a batch axis of 1..max_batch."""
    batch = torch.export.Dim("batch", min=1, max=max_batch)
    example = tuple(torch.from_numpy(a) for a in random_inputs(spec, 2).values())
    program = torch.onnx.export(
        module.eval(), example, dynamo=True, external_data=False, opset_version=OPSET,
        input_names=[t.name for t in spec.inputs], output_names=[t.name for t in spec.outputs],
        dynamic_shapes=tuple({0: batch} for _ in spec.inputs), verbose=False,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    program.save(str(path))


def export_all(model: SyncDetector, out: Path, max_batch: int = MAX_BATCH) -> dict[str, Path]:
    """Export the three graphs to ``out/<name>.onnx`` and return their paths."""
    specs = graph_specs(DEFAULT_CONFIG, model.config.d_model)
    paths = {}
    for name, module in graph_modules(model).items():
        paths[name] = out / f"{name}.onnx"
        export_graph(module, specs[name], paths[name], max_batch)
        LOG.info("exported %s", paths[name])
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, help=f"default {CHECKPOINT} if present, else a fixed-seed untrained model")
    parser.add_argument("--init", default="tiny", help="model config for the untrained model")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("build/onnx"))
    parser.add_argument("--parity-video", type=Path, default=SAMPLE_VIDEO, help="real video for the parity check")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    LOG.setLevel(logging.INFO)
    model = served_model(args.checkpoint, args.init, args.seed)
    if args.checkpoint is None and not CHECKPOINT.exists():
        LOG.warning("no checkpoint: exporting an untrained '%s' model initialised with seed %d", args.init, args.seed)
    paths = export_all(model, args.out)
    windows = preprocessing.preprocess_video(args.parity_video.read_bytes())  # the pipeline loads here, not on import
    for report in onnx_against_torch(model, paths, windows.window_inputs()):
        print(report)
        if not report.ok:
            raise SystemExit(f"ONNX Runtime disagrees with PyTorch on {report.graph}")


if __name__ == "__main__":
    main()
