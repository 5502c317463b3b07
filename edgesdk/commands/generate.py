"""edgesdk generate ARTIFACT --prompt TEXT [--max-tokens N] [--threads N] [--device NAME] [--json]"""

from __future__ import annotations

from ._common import add_json_flag, print_json


def add_parser(sub):
    p = sub.add_parser(
        "generate",
        help="generate text with an LM artifact (here or on a device)",
        description="Greedy generation with the KV cache: the prompt is tokenized on the host, prefilled in one "
        "call, then each new token is one decode call reusing the cache. Reports time to first token, prefill "
        "tokens/s and decode tokens/s (median per token).",
    )
    p.add_argument("artifact", help="an LM artifact directory written by 'edgesdk convert'")
    p.add_argument("--prompt", required=True, help="the prompt text")
    p.add_argument("--max-tokens", type=int, default=32, help="new tokens at most (default 32; stops at end of text)")
    p.add_argument("--threads", type=int, default=None, help="runtime threads (default: the runtime's choice)")
    p.add_argument("--device", default=None, help="a device in devices.yaml (default: this machine, no upload)")
    p.add_argument("--devices", metavar="YAML", help="device inventory (default: $EDGESDK_DEVICES, else ./devices.yaml)")
    add_json_flag(p)
    return p


def run(args) -> int:
    if args.device:
        from ..devices.generate import generate_on_device

        r = generate_on_device(args.artifact, args.prompt, args.max_tokens, device=args.device,
                               devices=args.devices, threads=args.threads)
    else:
        from ..llm.generate import generate

        r = generate(args.artifact, args.prompt, max_tokens=args.max_tokens, threads=args.threads)
    if args.json:
        print_json(r)
        return 0
    print(r["prompt"] + r["text"])
    decode = f"{r['decode_tokens_per_s']:.1f} tokens/s decode (p50 {r['decode_ms_p50']:.1f} ms/token)" if r["decode_steps"] else "no decode steps"
    print(f"-- {r['prompt_tokens']} prompt tokens, {len(r['tokens'])} new; first token {r['time_to_first_token_s'] * 1e3:.0f} ms "
          f"({r['prefill_tokens_per_s']:.1f} tokens/s prefill), {decode}")
    return 0
