"""Summaries of the workers' measurements and the printed comparison."""

from __future__ import annotations

import statistics
from typing import Any, TextIO

from bench.flops import Shape, ideal_step_flops
from bench.measure import PHASES, WorkerResult

SPEED_TARGET = 3.5  # ours must reach at least this multiple of TRL's steps/s
MEMORY_TARGET = 0.35  # and at most this fraction of its peak memory
LABELS = {
    "generation": "  generation",
    "scoring": "  scoring (reward)",
    "reference": "  reference forward",
    "training": "  training fwd+bwd",
    "optimizer": "  optimiser",
    "other": "  other (loop, logging)",
}


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


def summarise(results: list[WorkerResult], warmup: int, shape: Shape, gflops: float) -> dict[str, Any]:
    """Figures of one trainer at one beta, its repeats' measured steps pooled (memory: the largest peak)."""
    runs = [result.steps[warmup:] or result.steps[-1:] for result in results]
    measured = [step for run in runs for step in run]
    result = max(results, key=lambda r: r.steps[-1].peak_rss_mb)  # the repeat with the highest peak
    step_s = [s.step_s for s in measured]
    phases = {p: _median([s.phases[p] for s in measured]) for p in PHASES}
    phases["other"] = _median([s.step_s - sum(s.phases.values()) for s in measured])
    group = result.shape.group_size
    flops = [ideal_step_flops(shape, s.prompt_lengths, s.completion_lengths, group, result.beta) for s in measured]
    floor = {k: _median([f[k] for f in flops]) / (gflops * 1e9) for k in flops[0]}
    lengths = [n for s in measured for n in s.completion_lengths]
    peak = result.steps[-1].peak_rss_mb
    return {
        "steps_measured": len(measured),
        "step_s": _median(step_s),
        "step_s_per_repeat": [_median([s.step_s for s in run]) for run in runs],
        "step_s_min": min(step_s),
        "step_s_max": max(step_s),
        "phases_s": phases,
        "peak_rss_mb": peak,
        "rss_after_load_mb": result.rss_after_load_mb,
        "rss_increase_mb": peak - result.rss_after_load_mb,
        "peak_gpu_mb": result.steps[-1].peak_gpu_mb,
        "length_mean": statistics.fmean(lengths),
        "length_min": min(lengths),
        "length_max": max(lengths),
        "length_step_means": [statistics.fmean(s.completion_lengths) for s in measured],
        "truncated_frac": sum(s.truncated for s in measured) / len(lengths),
        "ideal_gflop": _median([f["total"] for f in flops]) / 1e9,
        "floor_s": floor,
        "floor_distance": _median(step_s) / floor["total"],
        "threads": result.threads,
    }


def _row(out: TextIO, label: str, ours: float | None, theirs: float | None, fmt: str = "{:.3f}") -> None:
    cells = [fmt.format(v) if v is not None else "-" for v in (ours, theirs)]
    ratio = f"{ours / theirs:.3f}" if ours is not None and theirs else "-"
    out.write(f"{label:<34}{cells[0]:>12}{cells[1]:>12}{ratio:>12}\n")


def _one_trainer(out: TextIO, name: str, s: dict[str, Any]) -> None:
    out.write(f"  {name}: {s['step_s']:.3f} s/step, peak RSS {s['peak_rss_mb']:.0f} MiB\n")


def write_beta(out: TextIO, beta: float, ours: dict[str, Any], theirs: dict[str, Any], quick: bool) -> None:
    out.write(f"\nbeta = {beta:g}   ({ours['steps_measured']} measured steps each, pooled over repeats)\n")
    out.write(f"{'':<34}{'engine':>12}{'TRL':>12}{'engine/TRL':>12}\n")
    _row(out, "seconds per step (median)", ours["step_s"], theirs["step_s"])
    _row(out, "  fastest step", ours["step_s_min"], theirs["step_s_min"])
    _row(out, "  slowest step", ours["step_s_max"], theirs["step_s_max"])
    for phase, label in LABELS.items():
        _row(out, label, ours["phases_s"][phase], theirs["phases_s"][phase])
    _row(out, "peak RSS, whole process (MiB)", ours["peak_rss_mb"], theirs["peak_rss_mb"], "{:.0f}")
    _row(out, "RSS after model load (MiB)", ours["rss_after_load_mb"], theirs["rss_after_load_mb"], "{:.0f}")
    _row(out, "peak RSS - RSS after load (MiB)", ours["rss_increase_mb"], theirs["rss_increase_mb"], "{:.0f}")
    if ours["peak_gpu_mb"] is not None and theirs["peak_gpu_mb"] is not None:
        _row(out, "peak GPU memory allocated (MiB)", ours["peak_gpu_mb"], theirs["peak_gpu_mb"], "{:.0f}")
    _row(out, "completion length, mean", ours["length_mean"], theirs["length_mean"], "{:.1f}")
    _row(out, "completion length, min", ours["length_min"], theirs["length_min"], "{:.0f}")
    _row(out, "completion length, max", ours["length_max"], theirs["length_max"], "{:.0f}")
    _row(out, "truncated fraction", ours["truncated_frac"], theirs["truncated_frac"], "{:.2f}")
    _row(out, "ideal GFLOP per step", ours["ideal_gflop"], theirs["ideal_gflop"], "{:.2f}")
    _row(out, "matmul floor (s per step)", ours["floor_s"]["total"], theirs["floor_s"]["total"])
    _row(out, "step time / floor (x)", ours["floor_distance"], theirs["floor_distance"], "{:.1f}")
    for phase in ("generation", "reference", "training"):
        if ours["floor_s"][phase]:
            _row(
                out,
                f"  {phase} / its floor (x)",
                ours["phases_s"][phase] / ours["floor_s"][phase],
                theirs["phases_s"][phase] / theirs["floor_s"][phase],
                "{:.1f}",
            )
    lengths = ", ".join(f"{m:.1f}" for m in ours["length_step_means"])
    out.write(f"engine mean length per step: {lengths}\n")
    lengths = ", ".join(f"{m:.1f}" for m in theirs["length_step_means"])
    out.write(f"TRL mean length per step:    {lengths}\n")
    if len(ours["step_s_per_repeat"]) > 1:
        per_repeat = ", ".join(
            f"{t / o:.2f}x" for o, t in zip(ours["step_s_per_repeat"], theirs["step_s_per_repeat"], strict=True)
        )
        out.write(f"steps/s ratio of each repeat (engine / TRL): {per_repeat}\n")
    speed = theirs["step_s"] / ours["step_s"]
    memory = ours["peak_rss_mb"] / theirs["peak_rss_mb"]
    increase = ours["rss_increase_mb"] / theirs["rss_increase_mb"] if theirs["rss_increase_mb"] > 0 else float("nan")
    if quick:
        out.write("(quick mode: smoke run, trainers overlapped; the figures mean nothing)\n")
        return
    speed_met = "met" if speed >= SPEED_TARGET else "NOT met"
    memory_met = "met" if memory <= MEMORY_TARGET else "NOT met"
    out.write(
        f"=> steps/s: {speed:.2f}x TRL's (target >= {SPEED_TARGET}x: {speed_met}); "
        f"peak RSS: {memory:.2f}x TRL's (target <= {MEMORY_TARGET}x: {memory_met}); "
        f"RSS increase over load: {increase:.2f}x TRL's\n"
    )


def write_report(
    out: TextIO, setting: dict[str, Any], summaries: dict[float, dict[str, dict[str, Any]]], *, quick: bool
) -> None:
    out.write(
        f"GRPO step: this engine vs TRL GRPOTrainer | preset {setting['preset']} on {setting['device']}, "
        f"{setting['dtype']}, {setting['threads']} threads\n{setting['workload']}\n"
        f"matmul rate of this machine: {setting['matmul_gflops']:.1f} GFLOP/s ({setting['dtype']}, best square matmul)"
        f"; per run: warm-up {setting['warmup_steps']} steps, then {setting['measured_steps']} measured; "
        f"{setting['repeats']} run(s) per trainer and beta\n"
        "memory: peak RSS = the worker process's lifetime peak resident set (ru_maxrss) at the last measured step; "
        "RSS after load = its resident set once the model(s) are loaded\n"
    )
    for beta, by_trainer in summaries.items():
        if "engine" in by_trainer and "trl" in by_trainer:
            write_beta(out, beta, by_trainer["engine"], by_trainer["trl"], quick)
        else:
            out.write(f"\nbeta = {beta:g}\n")
            for name, summary in by_trainer.items():
                _one_trainer(out, name, summary)
    out.flush()
