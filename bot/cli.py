"""The bootbot command line."""
from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import sys
from pathlib import Path

from bot import config as configuration
from bot import daemon, pipeline, report, series as series_module, workspace
from bot.build import ConfigError as KernelConfigError
from bot.pipeline import APPLY_FAILED, BUILD_FAILED, REFUSED, REGRESSION, check
from bot.store import StateFull
from checks import entry as entries_module
from checks import runner, sandbox
from checks.console import ERROR
from checks.runner import BootResult

USAGE_ERROR = 2


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message):   # one clear line, not a usage dump
        raise UsageError(message)


def _readable_file(text: str) -> Path:
    path = Path(text)
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"{text}: no such file")
    if not os.access(path, os.R_OK):
        raise argparse.ArgumentTypeError(f"{text}: not readable")
    return path


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="bootbot", description="Boot-test x86 kernel entries under QEMU.")
    parser.add_argument("--config", type=_readable_file, help="a TOML file overriding config/bootbot.toml")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    boot = commands.add_parser("boot", help="boot a kernel through each entry and judge each console")
    boot.add_argument("--bzimage", type=_readable_file, required=True)
    boot.add_argument("--vmlinux", type=_readable_file, help="default: extracted from the bzImage")
    boot.add_argument("--xen", type=_readable_file, help="Xen hypervisor (plain or gzipped); default from the configuration")
    boot.add_argument("--entries", help="comma-separated entry names; default: all")
    boot.add_argument("--json", type=Path, metavar="FILE", help="write the results as JSON")
    boot.add_argument("--append", default="", help="extra kernel command line for every entry")
    boot.add_argument("--accel", choices=["auto", "kvm", "tcg"], help="default from the configuration")
    boot.add_argument("--silence", type=float, metavar="SECONDS", help="declare a boot hung after this much console silence")
    check_parser = commands.add_parser("check", help="apply a series, build, boot what it touches, compare with the base")
    check_parser.add_argument("series", help="an mbox file, or a Message-ID or archive link to fetch")
    check_parser.add_argument("--tree", type=Path, help="the Linux git tree; default: the current directory")
    check_parser.add_argument("--json", type=Path, metavar="FILE", help="write the outcome as JSON")
    check_parser.add_argument("--accel", choices=["auto", "kvm", "tcg"], help="default from the configuration")
    poll = commands.add_parser("poll", help="the list bot: fetch the archive, check new series, reply")
    poll.add_argument("--once", action="store_true", help="one full cycle, then exit (else: as serve)")
    commands.add_parser("serve", help="the list bot, forever: one cycle every poll.interval_seconds")
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
        config = configuration.load(args.config)
        if getattr(args, "json", None) and not args.json.parent.resolve().is_dir():
            raise UsageError(f"--json {args.json}: no such directory {args.json.parent}")
        run = {"boot": _boot, "check": _check, "poll": _bot, "serve": _bot}[args.command]
        return run(args, config)
    except (UsageError, configuration.ConfigError, series_module.SeriesError, workspace.TreeError,
            KernelConfigError, sandbox.Unavailable) as e:
        print(f"bootbot: {e}", file=sys.stderr)
        return USAGE_ERROR
    except StateFull as e:   # a full disk under state/: one line; the step it hit was rolled back
        print(f"bootbot: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _select(names: str | None) -> list[entries_module.Entry]:
    known = entries_module.load()
    if not names:
        return list(known.values())
    chosen = [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in chosen if n not in known]
    if unknown or not chosen:
        raise UsageError(f"unknown entry {', '.join(unknown) or '(none)'}; known: {', '.join(known)}")
    return [known[n] for n in chosen]


def _boot(args, config) -> int:
    entries = _select(args.entries)
    given = {**pipeline.lab_files(config), "bzimage": args.bzimage, "vmlinux": args.vmlinux}
    if args.xen:
        given["xen"] = args.xen
    progress = _show_progress if sys.stderr.isatty() else (lambda entry, result: None)
    results = runner.boot(entries, given, pipeline.lab(config, args.accel), append=args.append,
                          silence=args.silence, progress=progress)
    print(_table(results))
    if args.json:
        args.json.write_text(json.dumps({"accel": results[0].accel, "entries": {r.entry: {
            "status": r.status, "seconds": r.seconds, "reason": r.reason, "log": r.log,
            "experimental": r.experimental} for r in results}}, indent=2) + "\n")
    strict = config.get("boot", "strict_experimental")
    return 1 if any(runner.counts_as_failure(r, strict) for r in results) else 0


def _check(args, config) -> int:
    tree = args.tree or _default_tree(config)
    source = Path(args.series)
    series_module.configure_b4(config.get("archive", "url"))
    if source.exists() or not ("@" in args.series or args.series.startswith(("http://", "https://"))):
        series = series_module.read_mbox(source)
    else:
        series = series_module.fetch(args.series)
    settings = pipeline.settings(config, tree, args.accel)
    # a line per stage on stderr, terminal or not: a cold first check is minutes of work
    outcome = check(series, settings, progress=lambda message: print(f"bootbot: {message}", file=sys.stderr, flush=True))
    reproduce = f"bootbot check {shlex.quote(args.series)} --tree {shlex.quote(str(tree))}"
    print(report.text(outcome, reproduce, config.get("mail", "from")), end="")
    if args.json:
        args.json.write_text(json.dumps(report.as_json(outcome), indent=2) + "\n")
    return {REGRESSION: 1, APPLY_FAILED: 1, BUILD_FAILED: 1, REFUSED: 1, ERROR: USAGE_ERROR}.get(outcome.verdict, 0)


def _bot(args, config) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("apscheduler").setLevel(logging.WARNING)   # not a line per cycle
    bot = daemon.make(config)
    if args.command == "poll" and args.once:
        daemon.cycle(bot)
    else:
        daemon.serve(bot, config.get("poll", "interval_seconds"))
    return 0


def _default_tree(config) -> Path:
    if (Path.cwd() / ".git").exists():
        return Path.cwd()
    if config.get("tree", "path"):
        return config.path("tree", "path")
    raise UsageError("no Linux tree: give --tree, run inside one, or set tree.path")


def _show_progress(entry: str, result: BootResult | None) -> None:
    if result is None:
        print(f"  {entry}: booting", file=sys.stderr, flush=True)
    else:
        print(result.progress_line(), file=sys.stderr, flush=True)


def _table(results: list[BootResult]) -> str:
    width = max(len(r.entry) for r in results) + 1
    rows = [f"{'entry':<{width}} {'status':<8} {'seconds':>7}  decided by"]
    for r in results:
        name = r.entry + ("*" if r.experimental else "")
        rows.append(f"{name:<{width}} {r.status:<8} {r.seconds:>7.1f}  {r.reason}")
    if any(r.experimental for r in results):
        rows.append("* experimental: shown, but does not fail the verdict unless configured to")
    rows.append(f"console logs: {Path(results[0].log).parent.parent}")
    return "\n".join(rows)


if __name__ == "__main__":
    sys.exit(main())
