"""edgesdk eval ARTIFACT [ARTIFACT ...] --perplexity TEXT_FILE [--window N] [--max-windows N] [--threads N] [--json]"""

from __future__ import annotations

from ._common import add_json_flag, print_json


def add_parser(sub):
    p = sub.add_parser(
        "eval",
        help="perplexity of an LM artifact against its float model",
        description="Tokenize a text file with the artifact's tokenizer, cut it into windows (each starting with "
        "BOS), run the artifact and its float model on the same tokens and report both perplexities, the "
        "increase, next-token top-1 agreement and the mean KL divergence (float ‖ artifact) per token. Several "
        "artifacts of one float model are evaluated side by side on the same tokens, the float model run once.",
    )
    p.add_argument("artifact", nargs="+", help="LM artifact directories written by 'edgesdk convert'")
    p.add_argument("--perplexity", required=True, metavar="TEXT_FILE", help="held-out text (UTF-8), or an .npz of input_ids")
    p.add_argument("--window", type=int, default=256, help="tokens per window (default 256)")
    p.add_argument("--max-windows", type=int, default=None, help="evaluate only the first N windows")
    p.add_argument("--threads", type=int, default=None, help="runtime threads (default: the runtime's choice)")
    add_json_flag(p)
    return p


def run(args) -> int:
    from ..llm.evaluate import evaluate_many

    reports = evaluate_many(args.artifact, args.perplexity, window=args.window, max_windows=args.max_windows,
                            threads=args.threads)
    if args.json:
        print_json(reports[0] if len(reports) == 1 else reports)
        return 0
    for r in reports:
        print(f"{r['artifact']}: {r['tokens']} tokens of {r['text']} ({r['windows']} windows of ≤{r['window']})")
        print(f"  perplexity {r['perplexity']:.3f} (float {r['float_perplexity']:.3f}, {r['perplexity_increase']:+.2%})")
        print(f"  next-token agreement {r['next_token_agreement']:.4f}, KL divergence {r['kl_divergence']:.4f} nats/token")
    return 0
