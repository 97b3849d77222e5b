"""`grpo-train spec.json --out DIR`: run a job spec in-process, without the service.

Writes DIR/metrics.jsonl (one JSON object per step: {"step": n, <metric>: value, ...}),
DIR/samples.jsonl (logged completions), DIR/evals.jsonl (evaluations) and the checkpoints
(DIR/checkpoint-NNNNNN), and prints one line per step. `--resume` continues from the latest complete
checkpoint in DIR; lines of steps after that checkpoint are dropped first, so every step appears in
metrics.jsonl exactly once.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from pathlib import Path
from typing import Any, TextIO

from workers.engine import EvalReport, StepReport, latest_checkpoint, train
from workers.spec import RunInputs, SpecError, load_spec_file, run_inputs

DEFAULT_DATA_DIR = Path.home() / ".cache" / "grpo-service"


class JsonlSink:
    """TrainingSink writing JSON lines into the output directory and one line per step to `console`."""

    def __init__(self, out: Path, total_steps: int, console: TextIO | None) -> None:
        self.out, self.total_steps, self.console = out, total_steps, console

    def _append(self, name: str, record: dict[str, Any]) -> None:
        with open(self.out / name, "a") as handle:
            handle.write(json.dumps(record) + "\n")

    def on_step(self, report: StepReport) -> None:
        self._append("metrics.jsonl", {"step": report.step, **report.metrics})
        for sample in report.samples:
            self._append("samples.jsonl", {"step": report.step, **dataclasses.asdict(sample)})
        if self.console:
            m = report.metrics
            kl = f"{m['kl']:.4f}" if "kl" in m else "-"
            self.console.write(
                f"step {report.step}/{self.total_steps}  "
                f"reward {m['reward/mean']:.3f} ± {m['reward/std']:.3f}  "
                f"kl {kl}  loss {m['loss']:+.4f}  len {m['completion/length_mean']:.1f}  "
                f"tokens/s {m['throughput/tokens_per_s']:.0f}  step_time_s {m['time/step_s']:.3f}\n"
            )
            self.console.flush()

    def on_checkpoint(self, step: int, path: Path) -> None:
        if self.console:
            self.console.write(f"checkpoint step {step}: {path}\n")

    def on_eval(self, report: EvalReport) -> None:
        self._append("evals.jsonl", {"step": report.step, **report.metrics})


def truncate_jsonl(path: Path, last_step: int) -> None:
    """Drop records of steps after `last_step` (they will be recomputed by the resumed run)."""
    if path.exists():
        lines = [line for line in path.read_text().splitlines() if line and json.loads(line)["step"] <= last_step]
        path.write_text("".join(line + "\n" for line in lines))


def load_inputs(spec_path: Path, data_dir: Path) -> RunInputs:
    """The run inputs of a spec file: the same run_inputs() the service's task calls, on inline rows."""
    spec = load_spec_file(spec_path)
    if spec.resources.distributed:  # not silently trained on one device
        raise SpecError("resources.devices > 1 runs through the service (see docs/distributed.md)", param="resources")
    return run_inputs(spec, data_dir=data_dir)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="grpo-train", description=__doc__.split("\n")[0])
    parser.add_argument("spec", type=Path, help="job spec JSON (the same document POST /v1/jobs accepts)")
    parser.add_argument("--out", type=Path, required=True, help="output directory (metrics, checkpoints)")
    parser.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in --out")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=DEFAULT_DATA_DIR,
        help="cache for built models such as tiny-demo (default: %(default)s)",
    )
    parser.add_argument("--quiet", action="store_true", help="no per-step lines")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        inputs = load_inputs(args.spec, args.data_dir)
    except (OSError, SpecError, ValueError) as error:
        sys.stderr.write(f"grpo-train: invalid spec: {error}\n")
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    resume_from = latest_checkpoint(args.out) if args.resume else None
    if args.resume and resume_from is None:
        sys.stderr.write(f"grpo-train: --resume: no complete checkpoint in {args.out}; starting from step 0\n")
    last_step = int(resume_from.name.split("-")[-1]) if resume_from else 0
    for name in ("metrics.jsonl", "samples.jsonl", "evals.jsonl"):
        truncate_jsonl(args.out / name, last_step)
    _quiet_transformers()
    sink = JsonlSink(args.out, inputs.config.max_steps, None if args.quiet else sys.stdout)
    with inputs.reward_fns() as (reward_fn, eval_reward_fn):
        result = train(
            inputs.config,
            inputs.rows,
            reward_fn,
            sink,
            work_dir=args.out,
            resume_from=resume_from,
            eval_rows=inputs.eval_rows,
            eval_reward_fn=eval_reward_fn,
        )
    sys.stdout.write(f"done: {result.steps_completed} steps, final checkpoint {result.final_checkpoint}\n")
    return 0


def _quiet_transformers() -> None:
    """Progress bars of weight loading/saving would interleave with the per-step lines."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


if __name__ == "__main__":
    sys.exit(main())
