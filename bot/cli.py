"""The `watchfloor` command: one entry point per thing a user does.

watchfloor demo | check | score | eval | replay | backtest | tune | run | worker | serve
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from bot.config import Config, ConfigError, load_config


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("httpx", "httpcore", "apscheduler.executors.default", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _load(args: argparse.Namespace) -> Config:
    try:
        return load_config(args.config)
    except ConfigError as exc:
        print(exc.report(), file=sys.stderr)
        raise SystemExit(1) from None


def cmd_check(args: argparse.Namespace) -> int:
    config = _load(args)
    print(f"{args.config or os.environ.get('WATCHFLOOR_CONFIG') or 'config.toml'}: OK")
    print(f"storage: {config.storage.url}")
    print(f"sources ({len(config.sources)}):")
    for s in config.sources:
        state = "" if s.enabled else "  [disabled]"
        print(f"  {s.name}  every {config.interval(s)}  {s.url}{state}")
    print(f"topics ({len(config.topics)}):")
    for t in config.topics:
        rules = ", ".join(f"{k}={len(v)}" for k, v in t.rules.model_dump().items() if v) or "no rules"
        state = "" if t.enabled else "  [disabled]"
        print(
            f"  {t.id}  threshold {t.threshold}  {rules}  examples: {len(t.examples.files)} file(s), "
            f"{len(t.examples.positive)}+/{len(t.examples.negative)}- inline  → {', '.join(t.destinations)}{state}"
        )
    from bot.retrain import example_warnings  # too few examples: the topic runs on its rules alone

    for warning in example_warnings(config):
        print(f"warning: {warning}")
    return 0


def _open_input(name: str) -> TextIO:
    if name == "-":
        return sys.stdin
    try:
        return open(name, encoding="utf-8")
    except OSError as exc:
        print(f"cannot read {name}: {exc.strerror}", file=sys.stderr)
        raise SystemExit(1) from None


def cmd_score(args: argparse.Namespace) -> int:
    from bot.score_lines import score_lines

    config = _load(args)
    stream = _open_input(args.file)
    try:
        return score_lines(config, stream, sys.stdout, explain=args.explain, now=datetime.now(UTC))
    finally:
        if stream is not sys.stdin:
            stream.close()


def cmd_eval(args: argparse.Namespace) -> int:
    from bot.evaluate import run_eval

    config = _load(args)
    path = Path(args.file)
    if not path.is_file():
        print(f"cannot read {path}: no such file", file=sys.stderr)
        return 1
    if args.curve:
        from bot.evaluate import run_curve

        if args.repeats < 1:
            print(f"--repeats must be at least 1, got {args.repeats}", file=sys.stderr)
            return 2

        return run_curve(config, path, sys.stdout, folds=args.folds, repeats=args.repeats)
    return run_eval(config, path, sys.stdout, folds=args.folds)


def cmd_demo(args: argparse.Namespace) -> int:
    from bot.demo import run_demo

    config = _load(args)
    return run_demo(config, sys.stdout)


def cmd_run(args: argparse.Namespace) -> int:
    from bot.service import run_service

    config_file = Path(args.config or os.environ.get("WATCHFLOOR_CONFIG") or "config.toml")
    _load(args)
    return run_service(config_file, once=args.once)


def cmd_serve(args: argparse.Namespace) -> int:
    from bot.web import run_web

    _load(args)
    return run_web(args.config, args.port, args.host)


def cmd_status(args: argparse.Namespace) -> int:
    from bot.queries import status_report, with_configured_digests
    from bot.render.console import render_status
    from bot.store import Store

    config = _load(args)
    store = Store.open(config.database_url())
    try:
        store.ensure_sources(
            [(s.name, s.url) for s in config.sources]
        )  # configured but never polled show too
        report = with_configured_digests(status_report(store), [d.destination for d in config.digests])
        print(render_status(report, datetime.now(UTC)))
    finally:
        store.close()
    return 0


def cmd_manifest(args: argparse.Namespace) -> int:
    from bot.manifest import ManifestError, manifest_command, resolve_socket_mode

    config = _load(args)
    try:
        socket = resolve_socket_mode(args.socket, args.url)
        sys.stdout.write(manifest_command(config, socket, args.url, fmt="json" if args.json else "yaml"))
    except ManifestError as exc:
        print(f"watchfloor manifest: {exc}", file=sys.stderr)
        return 2
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from bot.replay import ReplayError, run_replay

    config = _load(args)
    try:
        return run_replay(
            config,
            Path(args.file),
            sys.stdout,
            feedback=args.feedback_from_labels,
            window=args.window,
            retrain_after=args.retrain_after,
        )
    except ReplayError as exc:
        print(f"watchfloor replay: {exc}", file=sys.stderr)
        return 1


def cmd_backtest(args: argparse.Namespace) -> int:
    from bot.backtest import BacktestError, run_backtest
    from bot.durations import DurationError, parse_duration

    # Here --config is the proposed config; the current one is --current, else the usual default.
    current = _load(argparse.Namespace(config=args.current))
    proposed = None
    if args.config:
        try:
            proposed = load_config(args.config)
        except ConfigError as exc:
            print(exc.report(), file=sys.stderr)
            return 1
    try:
        since = parse_duration(args.since)
    except DurationError as exc:
        print(f"watchfloor backtest: --since {exc}", file=sys.stderr)
        return 2
    current_name = args.current or os.environ.get("WATCHFLOOR_CONFIG") or "config.toml"
    try:
        return run_backtest(
            current,
            proposed,
            sys.stdout,
            datetime.now(UTC),
            since,
            topic=args.topic,
            names=(current_name, args.config or current_name),
        )
    except BacktestError as exc:
        print(f"watchfloor backtest: {exc}", file=sys.stderr)
        return 2


def cmd_tune(args: argparse.Namespace) -> int:
    from bot.tune import TuneError, run_tune

    config = _load(args)
    try:
        return run_tune(
            config,
            args.topic,
            args.precision,
            sys.stdout,
            file=Path(args.file) if args.file else None,
            folds=args.folds,
        )
    except TuneError as exc:
        print(f"watchfloor tune: {exc}", file=sys.stderr)
        return 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="watchfloor", description="News alerts on watch topics.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--config", help="config file (default: $WATCHFLOOR_CONFIG, else ./config.toml)")
        return p

    add("check", "validate config.toml and summarise its sources and topics").set_defaults(func=cmd_check)
    p = add("score", "score JSON lines (title, text[, id, url, source, published]) against every topic")
    p.add_argument("file", nargs="?", default="-", help="JSON lines file, or - for stdin (default)")
    p.add_argument("--explain", action="store_true", help="add the terms and rules behind each score")
    p.set_defaults(func=cmd_score)
    p = add("eval", "precision, recall and F1 per topic on labelled JSON lines, model vs keyword rules")
    p.add_argument("file", help="labelled JSON lines (the news_dev.jsonl format)")
    p.add_argument(
        "--folds", type=int, default=5, help="cross-validation folds, grouped by event (default 5)"
    )
    p.add_argument(
        "--curve",
        action="store_true",
        help="learning curve: F1 per topic trained on 5, 10, 20 and all examples, next to the keyword rules",
    )
    p.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="with --curve: random draws of the N examples, pooled (default 3)",
    )
    p.set_defaults(func=cmd_eval)
    add("demo", "serve the bundled sample feeds locally and run one cycle end to end").set_defaults(
        func=cmd_demo
    )
    p = add("run", "poll, classify and deliver on a schedule (console without SLACK_BOT_TOKEN)")
    p.add_argument("--once", action="store_true", help="run one poll cycle and exit")
    p.set_defaults(func=cmd_run)
    p = add("worker", "the scheduler alone: poll, classify, deliver (Procfile `worker`)")
    p.add_argument("--once", action="store_true", help="run one poll cycle and exit")
    p.set_defaults(func=cmd_run)
    p = add("serve", "the web endpoint: Slack events, Teams feedback links, health (Procfile `web`)")
    p.add_argument(
        "--host", default="0.0.0.0", help="address to listen on (default 0.0.0.0: every interface)"
    )
    p.add_argument("--port", type=int, help="port (default: $PORT, else 3000)")
    p.set_defaults(func=cmd_serve)
    add("status", "sources' health, outbox depth, dead letters and model versions").set_defaults(
        func=cmd_status
    )
    p = add("manifest", "print the Slack app manifest for this config (paste it at api.slack.com/apps)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--socket", action="store_true", help="Socket Mode (the default)")
    mode.add_argument("--url", help="HTTP mode: public https base URL; Slack posts to <url>/slack/events")
    p.add_argument("--json", action="store_true", help="JSON instead of YAML")
    p.set_defaults(func=cmd_manifest)
    p = add(
        "replay", "replay labelled reports in time order through the pipeline: precision/recall per window"
    )
    p.add_argument("file", help="labelled JSON lines (the news_dev.jsonl format)")
    p.add_argument(
        "--feedback-from-labels",
        action="store_true",
        help="also replay with a simulated analyst clicking every alert by its label, retraining as configured",
    )
    p.add_argument("--window", type=int, default=25, help="alerts per window, per topic (default 25)")
    p.add_argument(
        "--retrain-after", type=int, help="retrain after N new labels (default: [learning].retrain_after)"
    )
    p.set_defaults(func=cmd_replay)
    help_text = "alerts a config change would add and remove, on the stored news"
    p = sub.add_parser("backtest", help=help_text, description=help_text)
    p.add_argument(
        "--config",
        metavar="NEW.toml",
        help="the proposed config (without it: the stored alerts vs a fresh scoring with the current config)",
    )
    p.add_argument(
        "--current",
        help="the current config, whose database is read (default: $WATCHFLOOR_CONFIG, else ./config.toml)",
    )
    p.add_argument("--topic", help="one topic only")
    p.add_argument("--since", default="30d", help="stories first seen this long ago or later (default 30d)")
    p.set_defaults(func=cmd_backtest)
    p = add("tune", "pick a topic's threshold for a target precision from its labelled data, cross-validated")
    p.add_argument("--topic", required=True, help="the topic id")
    p.add_argument("--precision", type=float, required=True, help="target precision, e.g. 0.9")
    p.add_argument("--file", help="more labelled JSON lines (the news_dev.jsonl format)")
    p.add_argument(
        "--folds", type=int, default=5, help="cross-validation folds, grouped by event (default 5)"
    )
    p.set_defaults(func=cmd_tune)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _setup_logging(args.verbose)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `watchfloor score … | head` closes early
        return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
