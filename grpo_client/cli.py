"""`grpo`: the service from a shell, for pipelines and people. GRPO_URL and GRPO_API_KEY from the environment.

    grpo jobs submit spec.json --wait        # exit 0 when the job succeeded, 1 when it failed
    grpo jobs logs JOB_ID --follow           # events as they happen, until the job ends
    grpo rewards test --reward ID --samples samples.json

Results are JSON on stdout (one object per line for listings); errors go to stderr as the server's
problem document, with exit code 1.
"""

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from grpo_client.client import GrpoClient
from grpo_client.errors import ApiError, GrpoError
from grpo_client.models import Event, Job

Handler = Callable[[GrpoClient, argparse.Namespace], int]


def _out(item: BaseModel | dict[str, Any]) -> None:
    data = item.model_dump(mode="json") if isinstance(item, BaseModel) else item
    sys.stdout.write(json.dumps(data) + "\n")
    sys.stdout.flush()


def _read_json(path: str) -> Any:
    text = sys.stdin.read() if path == "-" else Path(path).read_text()
    return json.loads(text)


SHOWN = (  # what a person follows while a job trains, as the demo shows it: (label, metric, format)
    ("reward", "reward/mean", ".3f"),
    ("kl", "kl", ".3f"),
    ("loss", "loss", "+.4f"),
    ("tok/s", "throughput/tokens_per_s", ".0f"),
)


def _metric_summary(values: dict[str, Any]) -> str:
    return "  ".join(
        f"{label} {values[name]:{spec}}" for label, name, spec in SHOWN if isinstance(values.get(name), int | float)
    )


def _event_line(event: Event) -> str:
    step = f" step {event.step}" if event.step is not None else ""
    message = event.message
    if event.type == "metrics" and isinstance(event.data.get("values"), dict):
        message = _metric_summary(event.data["values"]) or message
    return f"{event.created_at:%Y-%m-%d %H:%M:%S} {event.level:<7} {event.type}{step}: {message}"


def _progress(job: Job) -> str:
    line = f"{job.status} step {job.progress.step}/{job.progress.total_steps}  {_metric_summary(job.latest_metrics)}"
    return line.rstrip()


# --- jobs ---------------------------------------------------------------------------------------------
def jobs_submit(grpo: GrpoClient, args: argparse.Namespace) -> int:
    if args.dry_run:
        _out(grpo.jobs.dry_run(_read_json(args.spec)))
        return 0
    job = grpo.jobs.submit(_read_json(args.spec), idempotency_key=args.idempotency_key)
    if not args.wait:
        _out(job)
        return 0
    sys.stderr.write(f"submitted {job.id}\n")
    return _wait(grpo, str(job.id), args.timeout)


def _wait(grpo: GrpoClient, job_id: str, timeout_s: float | None, poll_s: float = 1.0) -> int:
    """Progress lines on stderr while it runs; the final job on stdout; 0 only if it succeeded, 3 if paused."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    last = None
    while True:
        job = grpo.jobs.get(job_id)
        line = _progress(job)
        if line != last:
            sys.stderr.write(line + "\n")
            last = line
        if job.finished:
            _out(job)
            if job.error:
                sys.stderr.write(f"{job.error.code}: {job.error.message}\n")
            return 0 if job.status == "succeeded" else 1
        if job.status == "paused":  # waits for a person (a budget, a safeguard, a pause): do not poll forever
            _out(job)
            sys.stderr.write(f"job {job_id} is paused; `grpo jobs resume {job_id}` continues it\n")
            return 3
        if deadline is not None and time.monotonic() > deadline:
            sys.stderr.write(f"error: job {job_id} still {job.status} after {timeout_s} s\n")
            return 1
        time.sleep(poll_s)


def jobs_wait(grpo: GrpoClient, args: argparse.Namespace) -> int:
    return _wait(grpo, args.job_id, args.timeout)


def jobs_get(grpo: GrpoClient, args: argparse.Namespace) -> int:
    _out(grpo.jobs.get(args.job_id))
    return 0


def jobs_list(grpo: GrpoClient, args: argparse.Namespace) -> int:
    for count, job in enumerate(grpo.jobs.iterate(status=args.status, name=args.name)):
        if args.limit is not None and count >= args.limit:
            break
        _out(job)
    return 0


def jobs_cancel(grpo: GrpoClient, args: argparse.Namespace) -> int:
    _out(grpo.jobs.cancel(args.job_id))
    return 0


def jobs_pause(grpo: GrpoClient, args: argparse.Namespace) -> int:
    _out(grpo.jobs.pause(args.job_id))
    return 0


def jobs_resume(grpo: GrpoClient, args: argparse.Namespace) -> int:
    _out(grpo.jobs.resume(args.job_id))
    return 0


BUDGETS = ("wall_clock_s", "device_hours", "generated_tokens", "reward_calls", "reward_seconds")


def jobs_budget(grpo: GrpoClient, args: argparse.Namespace) -> int:
    """Replace the job's budget with the limits given (none given: no limits)."""
    given = {name: getattr(args, name) for name in BUDGETS if getattr(args, name) is not None}
    _out(grpo.jobs.set_budget(args.job_id, **given))
    return 0


def _printing(fetch: Callable[[GrpoClient, argparse.Namespace], Any]) -> Handler:
    """A command handler that prints what `fetch` answers as one JSON line."""

    def handler(grpo: GrpoClient, args: argparse.Namespace) -> int:
        _out(fetch(grpo, args))
        return 0

    return handler


def jobs_preflight(grpo: GrpoClient, args: argparse.Namespace) -> int:
    report = grpo.jobs.preflight(_read_json(args.spec), prompts=args.prompts)
    _out(report)
    for warning in (report.get("report") or {}).get("warnings", []):
        sys.stderr.write(f"warning: {warning}\n")
    return 0


def jobs_logs(grpo: GrpoClient, args: argparse.Namespace) -> int:
    """Past events, then (--follow) new ones until the job ends."""
    types = args.type or None
    if args.follow:
        events = grpo.jobs.stream_events(args.job_id, types=types)
    else:
        events = iter(_all_events(grpo, args.job_id, types))
    for event in events:
        if args.json:
            _out(event)
        else:
            sys.stdout.write(_event_line(event) + "\n")
            sys.stdout.flush()
    return 0


def _all_events(grpo: GrpoClient, job_id: str, types: list[str] | None) -> list[Event]:
    events: list[Event] = []
    cursor = None
    while True:
        page = grpo.jobs.events(job_id, cursor=cursor, types=types, limit=1000)
        events += page.data
        if page.next_cursor is None:
            return events
        cursor = page.next_cursor


def jobs_metrics(grpo: GrpoClient, args: argparse.Namespace) -> int:
    for row in grpo.jobs.metrics(args.job_id, names=args.name or None):
        _out(row)
    return 0


def jobs_download(grpo: GrpoClient, args: argparse.Namespace) -> int:
    dest = Path(args.output or f"{args.job_id}-step{args.step:06d}.tar")
    grpo.jobs.download_checkpoint(args.job_id, args.step, dest, variant=args.variant)
    _out({"path": str(dest), "bytes": dest.stat().st_size})
    return 0


# --- datasets and rewards -----------------------------------------------------------------------------
def datasets_upload(grpo: GrpoClient, args: argparse.Namespace) -> int:
    _out(grpo.datasets.upload(args.name or Path(args.file).stem, Path(args.file)))
    return 0


def datasets_list(grpo: GrpoClient, args: argparse.Namespace) -> int:
    for dataset in grpo.datasets.iterate(name=args.name):
        _out(dataset)
    return 0


def rewards_create(grpo: GrpoClient, args: argparse.Namespace) -> int:
    sample = _read_json(args.validation_sample) if args.validation_sample else None
    _out(grpo.rewards.create(args.name, _read_json(args.spec), description=args.description, validation_sample=sample))
    return 0


def rewards_list(grpo: GrpoClient, args: argparse.Namespace) -> int:
    for reward in grpo.rewards.iterate(name=args.name):
        _out(reward)
    return 0


def rewards_test(grpo: GrpoClient, args: argparse.Namespace) -> int:
    samples = _read_json(args.samples)
    if args.spec:
        result = grpo.rewards.test_inline(_read_json(args.spec), samples)
    else:
        result = grpo.rewards.test(args.reward, samples, version=args.version)
    _out(result)
    return 0 if result.error_count == 0 else 1


def _jobs_parser(commands: Any) -> None:
    jobs = commands.add_parser("jobs", help="submit, follow and manage training jobs").add_subparsers(required=True)
    submit = jobs.add_parser("submit", help="submit a job spec (JSON file, or - for stdin)")
    submit.add_argument("spec")
    submit.add_argument("--wait", action="store_true", help="wait until it ends; exit 1 unless it succeeded")
    submit.add_argument("--timeout", type=float, help="with --wait: give up after this many seconds")
    submit.add_argument("--idempotency-key", help="default: a new random key (retries reuse it)")
    submit.add_argument("--dry-run", action="store_true", help="print the resolved spec; create no job")
    submit.set_defaults(handler=jobs_submit)
    check = jobs.add_parser("preflight", help="sample the base model on a spec before running it (on a worker)")
    check.add_argument("spec")
    check.add_argument("--prompts", type=int, help="prompts to sample (default 8)")
    check.set_defaults(handler=jobs_preflight)
    reproduce = jobs.add_parser("reproduce", help="submit a new job from a checkpoint's manifest")
    reproduce.add_argument("job_id")
    reproduce.add_argument("step", type=int)
    reproduce.set_defaults(handler=_printing(lambda grpo, args: grpo.jobs.reproduce(args.job_id, args.step)))
    manifest = jobs.add_parser("manifest", help="print a checkpoint's reproducibility manifest")
    manifest.add_argument("job_id")
    manifest.add_argument("step", type=int)
    manifest.set_defaults(handler=_printing(lambda grpo, args: grpo.jobs.manifest(args.job_id, args.step)))
    for name, handler, text in [
        ("get", jobs_get, "show a job"),
        ("cancel", jobs_cancel, "cancel a job"),
        ("pause", jobs_pause, "pause a job (it checkpoints and frees its worker)"),
        ("resume", jobs_resume, "resume a paused job from its latest checkpoint"),
        ("wait", jobs_wait, "wait until a job ends"),
        ("metrics", jobs_metrics, "per-step metrics, one JSON line per step"),
    ]:
        sub = jobs.add_parser(name, help=text)
        sub.add_argument("job_id")
        sub.set_defaults(handler=handler)
        if name == "wait":
            sub.add_argument("--timeout", type=float)
        if name == "metrics":
            sub.add_argument("--name", action="append", help="only this metric (repeat)")
    budget = jobs.add_parser("budget", help="replace a job's budget (crossing one pauses the job)")
    budget.add_argument("job_id")
    for name in BUDGETS:
        kind = int if name in ("generated_tokens", "reward_calls") else float
        budget.add_argument(f"--{name.replace('_', '-')}", dest=name, type=kind)
    budget.set_defaults(handler=jobs_budget)
    listing = jobs.add_parser("list", help="your jobs, newest first")
    listing.add_argument("--status")
    listing.add_argument("--name", help="substring of the name")
    listing.add_argument("--limit", type=int)
    listing.set_defaults(handler=jobs_list)
    logs = jobs.add_parser("logs", help="a job's events (status, metrics, checkpoints, alerts)")
    logs.add_argument("job_id")
    logs.add_argument("--follow", "-f", action="store_true", help="stream new events until the job ends")
    logs.add_argument("--type", action="append", help="only events of this type (repeat)")
    logs.add_argument("--json", action="store_true", help="one JSON object per event")
    logs.set_defaults(handler=jobs_logs)
    download = jobs.add_parser("download", help="a checkpoint as a tar archive")
    download.add_argument("job_id")
    download.add_argument("step", type=int)
    download.add_argument("--output", "-o")
    download.add_argument("--variant", default="model", choices=["model", "full", "merged"])
    download.set_defaults(handler=jobs_download)


def _other_parsers(commands: Any) -> None:
    datasets = commands.add_parser("datasets", help="upload and list datasets").add_subparsers(required=True)
    upload = datasets.add_parser("upload", help="upload a JSONL file")
    upload.add_argument("file")
    upload.add_argument("--name", help="default: the file name without extension")
    upload.set_defaults(handler=datasets_upload)
    listing = datasets.add_parser("list")
    listing.add_argument("--name")
    listing.set_defaults(handler=datasets_list)

    rewards = commands.add_parser("rewards", help="reward definitions").add_subparsers(required=True)
    create = rewards.add_parser("create", help="create a reward definition from a spec JSON file")
    create.add_argument("name")
    create.add_argument("spec")
    create.add_argument("--description", default="")
    create.add_argument("--validation-sample", help="JSON file with a representative sample for the dry run")
    create.set_defaults(handler=rewards_create)
    listing = rewards.add_parser("list")
    listing.add_argument("--name")
    listing.set_defaults(handler=rewards_list)
    test = rewards.add_parser("test", help="score samples; exit 1 if any sample had an error")
    which = test.add_mutually_exclusive_group(required=True)
    which.add_argument("--reward", help="a stored reward's id")
    which.add_argument("--spec", help="an inline reward spec (JSON file), not stored")
    test.add_argument("--samples", required=True, help='JSON list of {"prompt", "completion", "row"}')
    test.add_argument("--version", type=int)
    test.set_defaults(handler=rewards_test)


def _webhooks_parser(commands: Any) -> None:
    hooks = commands.add_parser("webhooks", help="endpoints that receive job events").add_subparsers(required=True)
    create = hooks.add_parser("create", help="add an endpoint; prints its secret (shown only once)")
    create.add_argument("endpoint_url", metavar="url")  # not "url": that is the service's (--url)
    create.add_argument("--event-type", action="append", help="only this job event type (repeat); default all")
    create.set_defaults(
        handler=_printing(lambda grpo, args: grpo.webhooks.create(args.endpoint_url, event_types=args.event_type))
    )
    hooks.add_parser("list").set_defaults(handler=_webhooks_list)
    for name, text in (("delete", "remove an endpoint"), ("deliveries", "an endpoint's delivery log")):
        sub = hooks.add_parser(name, help=text)
        sub.add_argument("webhook_id")
        sub.set_defaults(handler=_webhooks_delete if name == "delete" else _webhooks_deliveries)
    again = hooks.add_parser("redeliver", help="send a delivery again")
    again.add_argument("webhook_id")
    again.add_argument("delivery_id")
    again.set_defaults(handler=_printing(lambda grpo, args: grpo.webhooks.redeliver(args.webhook_id, args.delivery_id)))


def _webhooks_list(grpo: GrpoClient, _args: argparse.Namespace) -> int:
    for webhook in grpo.webhooks.list():
        _out(webhook)
    return 0


def _webhooks_delete(grpo: GrpoClient, args: argparse.Namespace) -> int:
    grpo.webhooks.delete(args.webhook_id)
    return 0


def _webhooks_deliveries(grpo: GrpoClient, args: argparse.Namespace) -> int:
    for delivery in grpo.webhooks.deliveries(args.webhook_id):
        _out(delivery)
    return 0


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(
        prog="grpo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    main.add_argument("--url", help="service URL (default: $GRPO_URL or http://127.0.0.1:8000)")
    main.add_argument("--api-key", help="default: $GRPO_API_KEY")
    commands = main.add_subparsers(required=True)
    _jobs_parser(commands)
    _other_parsers(commands)
    _webhooks_parser(commands)
    return main


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        with GrpoClient(args.url, args.api_key) as grpo:
            return int(args.handler(grpo, args))
    except ApiError as error:
        sys.stderr.write(f"error: {error}\n{json.dumps(error.problem.model_dump(mode='json'))}\n")
        return 1
    except (GrpoError, ValueError, OSError) as error:
        sys.stderr.write(f"error: {error}\n")
        return 1
