"""Human output of a ProfileResult (profile and deploy share it)."""

from __future__ import annotations


def print_profile(result) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    lat = result.latency
    facts = result.facts
    emulated = " EMULATED" if result.emulated else ""
    table = Table(title=f"{result.model} ({result.recipe}) on {result.device} [{result.target}]{emulated}",
                  show_header=False)
    table.add_column(style="bold")
    table.add_column()
    if result.emulated:
        table.add_row("emulated", f"qemu on this machine: these timings are not a {result.target} board's")
    table.add_row("device", f"{facts.arch}, {facts.cpu or '?'} x{facts.cores or '?'}, {facts.os}, kernel {facts.kernel}")
    table.add_row("runtime", f"{result.runtime.get('name', '?')} {result.runtime.get('version', '?')}, python {facts.python}, "
                             f"threads {result.runtime.get('threads') or 'default'}")
    if result.lm is not None:
        _lm_rows(table, result)
    label = "decode step (ms)" if result.lm is not None else "latency (ms)"
    table.add_row(label, f"p50 {lat.p50:.2f}  p90 {lat.p90:.2f}  p99 {lat.p99:.2f}  "
                                  f"mean {lat.mean:.2f} ± {lat.std:.2f}  min {lat.min:.2f}  max {lat.max:.2f}  (n={lat.n})")
    table.add_row("peak RSS", f"{result.peak_rss_mb:.1f} MB")
    for name, m in (result.accuracy.items() if result.lm is None else ()):
        host = result.host_accuracy.get(name, {}).get("cosine_mean")
        host_text = f"  (host at export: {host:.6f})" if host is not None else ""
        table.add_row(f"accuracy {name}", f"cosine mean {m['cosine_mean']:.6f} min {m['cosine_min']:.6f}, "
                                          f"max |err| {m['max_abs_error']:.4g}{host_text}")
    if result.power is not None:
        table.add_row("power", _power_text(result.power))
    up = result.upload
    table.add_row("upload", f"{len(up.uploaded)} file(s), {up.bytes_sent / 1e6:.1f} MB sent; {len(up.skipped)} already there")
    phases = result.phases_s
    table.add_row("wall time (s)", "  ".join(f"{k} {phases[k]:.2f}" for k in ("connect", "facts", "upload", "run", "collect")
                                            if k in phases))
    table.add_row("run record", str(result.run_dir))
    console.print(table)


def _lm_rows(table, result) -> None:
    lm, acc = result.lm, result.accuracy
    ttft = lm["time_to_first_token_ms"]
    table.add_row("time to first token", f"{ttft:.1f} ms for {lm['prompt_tokens']} prompt tokens "
                                         f"({lm['prefill_tokens_per_s']:.1f} tokens/s prefill)")
    table.add_row("decode", f"{lm['decode_tokens_per_s']:.2f} tokens/s (p50 {lm['decode_ms_p50']:.2f} ms/token, "
                            f"{lm['decode_steps']} steps)")
    if "energy_per_token_mj" in lm:
        table.add_row("energy per token", f"{lm['energy_per_token_mj']:.3g} mJ")
    if acc.get("next_token"):
        n = acc["next_token"]
        host = result.host_accuracy.get("next_token_agreement")
        host_text = f"; host vs float at export {host:.4f}" if host is not None else ""
        table.add_row("next-token agreement", f"device vs host {n['agreement_with_host']:.4f}, device vs float "
                                              f"{n['agreement_with_float']:.4f} ({n['positions']} positions{host_text})")


def _power_text(power: dict) -> str:
    from rich.markup import escape

    if "error" in power:
        return f"[red]{escape(power['sensor'])}: {escape(power['error'])}[/red]"
    idle = f"idle {power['idle_w']:.2f} W  " if power.get("idle_w") is not None else ""
    above = " above idle" if power.get("idle_subtracted") else ""
    return (f"{power['sensor']}: {idle}mean {power['mean_w']:.2f} W  peak {power['peak_w']:.2f} W  "
            f"{power['energy_per_inference_mj']:.3g} mJ/inference{above}  ({power['samples']} samples, "
            f"total = {escape(power['total_source'])})")


def report_fleet(artifact, outcomes: list, as_json: bool) -> int:
    """One summary of a fleet run (a row per device, failures included); the exit code of the first failure."""
    failed = [o for o in outcomes if o.result is None]
    if as_json:
        from ._common import print_json

        print_json({**({"artifact": str(artifact.path)} if artifact is not None else {}),
                    "devices": [o.to_json() for o in outcomes], "failed": [o.device.name for o in failed]})
    else:
        from rich.console import Console
        from rich.table import Table

        table = Table(title=f"{len(outcomes)} devices" + (f": {artifact.path}" if artifact is not None else ""))
        for column in ("device", "target", "p50 ms", "p90 ms", "accuracy", "peak RSS MB", "wall s", "status"):
            table.add_column(column)
        for o in outcomes:
            r = o.result
            if r is None:
                table.add_row(o.device.name, o.device.target, "-", "-", "-", "-", f"{o.wall_s:.1f}",
                              f"[red]FAILED[/] {o.error}")
                continue
            accuracy = f"cosine {r.cosine:.6f}" if r.cosine is not None else "-"
            status = "ok (EMULATED)" if r.emulated else "ok"
            table.add_row(o.device.name, r.target, f"{r.latency.p50:.2f}", f"{r.latency.p90:.2f}", accuracy,
                          f"{r.peak_rss_mb:.0f}", f"{o.wall_s:.1f}", status)
        Console().print(table)
    return failed[0].exit_code if failed else 0
