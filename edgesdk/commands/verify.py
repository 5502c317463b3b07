"""edgesdk verify OUT_DIR --data HELDOUT.npz [--json]"""

from __future__ import annotations

from ._common import add_json_flag, positive_int, print_json


def add_parser(sub):
    p = sub.add_parser(
        "verify",
        help="compare an artifact with its float model on held-out data",
        description="Run the artifact and the float model it was made from on held-out data; report per output "
        "the mean and min cosine similarity, the max absolute error and, for [batch, classes] outputs, top-1 agreement.",
    )
    p.add_argument("artifact", help="an artifact directory written by 'edgesdk convert'")
    p.add_argument("--data", required=True, metavar="NPZ", help="held-out inputs: one array per model input")
    p.add_argument("--limit", type=positive_int, default=None, help="use only the first N samples")
    add_json_flag(p)
    return p


def run(args) -> int:
    from .. import api

    report = api.verify(args.artifact, args.data, limit=args.limit)
    if args.json:
        print_json({"outputs": report["outputs"], "samples": report["samples"]})
        return 0
    print(f"{report['artifact']}: {report['samples']} samples")
    for name, m in report["outputs"].items():
        extra = f", top-1 agreement {m['top1_agreement']:.4f}" if "top1_agreement" in m else ""
        print(f"  {name}: cosine mean {m['cosine_mean']:.5f} min {m['cosine_min']:.5f}, max |err| {m['max_abs_error']:.4g}{extra}")
    return 0
