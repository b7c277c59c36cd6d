"""The bootbot command line. Each command imports what it needs when it runs: a boot should not
wait for the list bot's libraries to load."""
from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

from bot import config as configuration
from bot.words import EXIT_STATUS, LabError, fails

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


def _parser(declared) -> argparse.ArgumentParser:
    """The command line; `boot` takes each file the declared entries boot as --NAME."""
    parser = _Parser(prog="bootbot", description="Boot-test x86 kernel and Xen entries under QEMU.")
    parser.add_argument("--config", type=_readable_file, help="a TOML file overriding config/bootbot.toml")
    parser.add_argument("--version", action="version", version=f"bootbot {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    boot = commands.add_parser("boot", help="boot what was built through each entry and judge each console")
    boot.add_argument("--tree", choices=list(declared.trees), default=next(iter(declared.trees)),
                      help="whose entries to boot (default: %(default)s)")
    for name in declared.file_names():
        boot.add_argument(f"--{name.replace('_', '-')}", type=_readable_file, dest=f"file:{name}",
                          metavar="PATH", help=f"the {name} to boot (else derived or the host's, when it can be)")
    boot.add_argument("--entries", help="comma-separated entry names; default: all of the tree's")
    boot.add_argument("--json", type=Path, metavar="FILE", help="write the results as JSON")
    boot.add_argument("--append", default="", help="extra kernel command line for every entry")
    boot.add_argument("--accel", choices=["auto", "kvm", "tcg"], help="default from the configuration")
    boot.add_argument("--silence", type=float, metavar="SECONDS",
                      help="declare a boot hung after this much console silence")
    check = commands.add_parser("check", help="apply a series, build, boot what it touches, compare with the base")
    check.add_argument("series", help="an mbox file, or a Message-ID or archive link to fetch")
    check.add_argument("--tree", type=Path, help="the git tree to apply to; default: the current directory when "
                                                 "it is a git tree of a kind, else the configured tree of the "
                                                 "series' kind")
    check.add_argument("--json", type=Path, metavar="FILE", help="write the outcome as JSON")
    check.add_argument("--accel", choices=["auto", "kvm", "tcg"], help="default from the configuration")
    classify = commands.add_parser("classify", help="judge a saved console log as a boot would be judged")
    classify.add_argument("log", type=_readable_file, help="a console log (console.log of a result folder)")
    classify.add_argument("--tree", choices=list(declared.trees), default=next(iter(declared.trees)),
                          help="whose entry (default: %(default)s)")
    classify.add_argument("--entry", help="judge with this entry's success line (default: the marker)")
    report = commands.add_parser("report", help="print the report of a check from its result folder")
    report.add_argument("folder", type=Path, help="a result folder (state/results/...)")
    poll = commands.add_parser("poll", help="the list bot: fetch the archive, check new series, reply")
    poll.add_argument("--once", action="store_true", help="one full cycle, then exit (else: as serve)")
    commands.add_parser("serve", help="the list bot, forever: one cycle every poll.interval_seconds")
    web = commands.add_parser("web", help="serve the results pages and their JSON (read-only)")
    web.add_argument("--listen", metavar="HOST:PORT", help="default: web.listen, else 127.0.0.1:8080")
    commands.add_parser("status", help="the list bot's health: polls, series, jobs, workers, checks, outbox, boots")
    worker = commands.add_parser("worker", help="check the jobs the list bot sends through queue.broker, one at a time")
    worker.add_argument("--name", help="its name among the workers (default: worker.name, else this host's name)")
    commands.add_parser("sources", help="the list bot's sources: each one's cursor, last poll, last new item, error")
    trees = commands.add_parser("trees", help="the trees and the upstream branches they follow; fetch them, "
                                              "or make one")
    action = trees.add_subparsers(dest="action", parser_class=_Parser)
    fetch = action.add_parser("fetch", help="fetch every followed branch now")
    fetch.add_argument("kind", nargs="?", choices=list(declared.trees), help="only this tree kind's")
    init = action.add_parser("init", help="make a tree of KIND at PATH, cloned from its upstreams")
    init.add_argument("kind", choices=list(declared.trees))
    init.add_argument("path", type=Path)
    outbox = commands.add_parser("outbox", help="the list bot's replies: list them; show, approve or drop one")
    outbox.add_argument("action", choices=["list", "show", "approve", "drop"])
    outbox.add_argument("id", type=int, nargs="?", help="the reply (its number in `outbox list`)")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        config = configuration.load(_config_file(argv))
        from bot import declarations
        declared = declarations.load(config.path("checks", "dir"))
        args = _parser(declared).parse_args(argv)
        if getattr(args, "json", None) and not args.json.parent.resolve().is_dir():
            raise UsageError(f"--json {args.json}: no such directory {args.json.parent}")
        run = {"boot": _boot, "check": _check, "classify": _classify, "report": _report, "poll": _bot,
               "serve": _bot, "outbox": _outbox,
               "sources": _sources, "web": _web, "trees": _trees,
               "status": _status, "worker": _worker}[args.command]
        return run(args, config, declared)
    except (UsageError, configuration.ConfigError, LabError) as e:
        print(f"bootbot: {e}", file=sys.stderr)
        return USAGE_ERROR
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:   # the reader went away (`| head`): nothing of ours failed
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _config_file(argv: list[str]) -> Path | None:
    """--config, read before the rest: the declarations it names shape the command line."""
    early = _Parser(add_help=False)
    early.add_argument("--config", type=_readable_file)
    return early.parse_known_args(argv)[0].config


def _boot(args, config, declared) -> int:
    from bot import folders, settings
    from bot.boots import runner

    tree = declared.trees[args.tree]
    entries = _select(tree, args.entries)
    given = {name[5:]: path for name, path in vars(args).items() if name.startswith("file:") and path}
    lab = settings.lab(config, args.accel)
    missing = declared.missing_files(entries, given, lab.host)
    if missing:
        name, users = next(iter(missing.items()))
        raise UsageError(f"give --{name.replace('_', '-')}: {', '.join(users)} boot{'s' * (len(users) == 1)} it")
    files = settings.files(given, declared, lab, settings.sandbox_limits(config))
    folder = folders.new_folder(settings.state_folder(config).runs)
    progress = _show_progress if sys.stderr.isatty() else (lambda entry, booted: None)
    results = runner.boot(entries, files, lab, folder, patterns=declared.patterns, probe=tree.probe,
                          symbols=tree.symbols_of(given), append=args.append, silence=args.silence, progress=progress)
    print(_table(results, folder))
    if args.json:
        args.json.write_text(json.dumps({"accel": results[0].accel, "entries": {r.entry: {
            "status": r.status, "seconds": r.seconds, "reason": r.reason, "log": str(folder / r.log),
            "experimental": r.experimental, "kind": r.kind, "block": r.block, "location": r.location}
            for r in results}}, indent=2) + "\n")
    strict = config.get("boot", "strict_experimental")
    return 1 if any(fails(r.status, r.experimental, strict) for r in results) else 0


def _check(args, config, declared) -> int:
    import shlex

    from bot import settings
    from bot.changes import series as series_module
    from bot.verdicts import check

    series_module.configure_b4(config.get("archive", "url"))
    source = Path(args.series)
    try:
        if source.exists() or not ("@" in args.series or args.series.startswith(("http://", "https://"))):
            series = series_module.read_mbox(source)
        else:
            series = series_module.fetch(args.series)
    except series_module.SeriesError as e:
        raise UsageError(str(e)) from None
    # the current folder when it is a tree a kind's marks know: not any git repository (bootbot's own clone)
    tree = args.tree or (Path.cwd() if (Path.cwd() / ".git").exists() and declared.kind_of(Path.cwd()) else None)
    # a line per stage on stderr, terminal or not: a cold first check is minutes of work
    from bot.sources.inbox import thread_link
    archive = "" if source.exists() else config.get("archive", "url")   # fetched from it by Message-ID
    origin = {"source": "", "archive": archive, "link": thread_link(archive, series.patches[0].msgid)}
    folder = check.check(series, settings.load(config, args.accel, declared),
                         progress=lambda message: print(f"bootbot: {message}", file=sys.stderr, flush=True),
                         tree_path=tree, named=shlex.quote(source.name if source.exists() else args.series),
                         origin=origin)
    return _print_report(folder, config, args.json)


def _classify(args, config, declared) -> int:
    """Re-judges an old log with today's patterns: what an operator runs after changing them."""
    import re

    from bot.boots.console import Console, judge_log

    tree = declared.trees[args.tree]
    entry = _select(tree, args.entry)[0] if args.entry else next(iter(tree.entries.values()))
    success = re.compile(entry.success.replace("{nonce}", "[0-9a-f]+"))   # any run's nonce
    console = Console(success, declared.patterns)
    decision, number = judge_log(console, args.log.read_bytes().decode("utf-8", "replace"))
    if decision:
        print(f"{decision.status}{f' ({decision.kind})' if decision.kind else ''}: line {number}")
        print("\n".join(f"  {line}" for line in decision.block or (decision.reason,)))
        return 0 if decision.status == "pass" else 1
    print(f"timeout: the log ends undecided; last line: {console.last_line or '(none)'}")
    return 1


def _report(args, config, declared) -> int:
    return _print_report(args.folder, config, None)


def _print_report(folder: Path, config, json_file: Path | None) -> int:
    from bot import folders
    from bot.reports import text

    try:
        outcome = folders.read(folder)
    except (OSError, ValueError, TypeError) as e:
        raise UsageError(f"{folder} holds no readable check result: {e}") from None
    print(text.text(outcome, folder, config.get("mail", "from")), end="")
    if json_file:
        data = json.loads((folder / folders.OUTCOME).read_text())
        json_file.write_text(json.dumps({**data, "folder": str(folder.resolve())}, indent=2) + "\n")
    return EXIT_STATUS[outcome.verdict]


def _bot(args, config, declared) -> int:
    import logging

    from bot import daemon
    from bot.state import StateFull

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("apscheduler").setLevel(logging.WARNING)   # not a line per cycle
    bot = daemon.make(config)
    try:
        if args.command == "poll" and args.once:
            daemon.cycle(bot)
        else:
            daemon.serve(bot, config.get("poll", "interval_seconds"))
    except StateFull as e:   # a full disk under state/: one line; the step it hit was rolled back
        print(f"bootbot: {e}", file=sys.stderr)
        return 1
    return 0


def _sources(args, config, declared) -> int:
    """What the bot follows and how far it has read: from the state alone, no server is asked."""
    import time

    from bot import settings, sources
    from bot.state import State

    state = State(settings.state_folder(config).database)

    def when(at) -> str:
        return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(at)) if at else "never"

    polls = state.sources.polls()
    for source in sources.load(config, settings.load(config, declared=declared), state):
        poll = polls.get(source.name)
        print(f"{source.name}: {source.kind} {source.where}")
        for key, value in source.cursors().items():
            print(f"  cursor {key}: {when(float(value)) if key == 'since' else value}")
        print(f"  last poll: {when(poll and poll.polled)}" + (f", failed: {poll.error}" if poll and poll.error else
                                                             ", ok" if poll and poll.polled else ""))
        if poll and poll.error:
            print(f"  last good poll: {when(poll.succeeded)}")
        print(f"  last new: {when(poll and poll.new_at)}" + (f" ({poll.new_item})" if poll and poll.new_item else ""))
    return 0


def _trees(args, config, declared) -> int:
    """The trees and what they follow; `fetch` fetches now, `init` makes one."""
    from bot import settings
    from bot.trees import upstream

    logs = settings.state_folder(config).trees
    if args.action == "init":
        return _init_tree(args, config, declared, logs)
    sites = settings.load(config, declared=declared).sites
    if args.action == "fetch":
        kinds = [args.kind] if args.kind else [kind for kind, site in sites.items() if site and site.following]
        followed = {kind: site for kind in kinds if (site := sites[kind]) and site.following}
        if len(followed) < len(kinds) or not kinds:
            kind = next((kind for kind in kinds if kind not in followed), "KIND")
            said = f"the {kind} tree follows no upstream" if kinds else "no tree follows an upstream"
            raise UsageError(f"{said}: set [trees.{kind}] path and [[trees.{kind}.upstream]]")
        failed = 0
        for kind, site in followed.items():
            assert site.following is not None
            for name, record in upstream.fetch(kind, site.path, site.following, logs).items():
                print(f"{kind}: {name}: " + (record["error"] or f"fetched in {record['seconds']:.1f} s"))
                failed += bool(record["error"])
        return 1 if failed else 0
    for kind, site in sites.items():
        print("\n".join(_tree_lines(kind, site, logs)))
    return 0


def _tree_lines(kind: str, site, logs: Path) -> list[str]:
    import time

    from bot.trees import upstream

    def when(at) -> str:
        return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(at)) if at else "never"

    if site is None:
        return [f"{kind}: not configured ([trees.{kind}] path; `bootbot trees init {kind} PATH` makes one)"]
    if site.following is None:
        return [f"{kind}: {site.path}, follows nothing (no [[trees.{kind}.upstream]]); series without a base "
                f"go to {site.branch}"]
    records, branches = upstream.log_of(logs, kind, site.path), upstream.followed(site.path)
    lines = [f"{kind}: {site.path}, series without a base go to {site.branch}"]
    for u in site.following.upstreams:
        record = records.get(u.name, {})
        lines.append(f"  {u.name} {u.url}: fetched {when(record.get('fetched'))}, "
                     + (f"failed: {record['error']}; last good fetch {when(record.get('succeeded'))}"
                        if record.get("error") else "ok" if record else "not yet"))
        lines += [f"    {b.name.split('/', 1)[1]:<16} {b.head[:12]}  {when(b.date)}" for b in branches
                  if b.name.startswith(f"{u.name}/")]
    return lines


def _init_tree(args, config, declared, logs: Path) -> int:
    """Clones a tree of a kind from its first upstream, fetches the others, and names its path in
    the configuration: appended to the file given with --config when it can be, else printed."""
    from bot import settings
    from bot.trees import upstream

    following = settings.following(config, args.kind)
    if following is None:
        raise UsageError(f"[trees.{args.kind}] follows no upstream to clone from ([[trees.{args.kind}.upstream]])")
    path = args.path.expanduser().resolve()
    if path.exists() and any(path.iterdir()):
        raise UsageError(f"{path} exists and is not empty")
    tree = declared.trees[args.kind]
    print(f"bootbot: cloning {following.upstreams[0].url} into {path}"
          + (f" (--filter={tree.clone_filter})" if tree.clone_filter else ""), file=sys.stderr, flush=True)
    try:
        upstream.clone(tree.clone_filter, following.upstreams[0], path)
    except RuntimeError as e:
        raise UsageError(str(e)) from None
    records = upstream.fetch(args.kind, path, following, logs)
    failed = {name: r["error"] for name, r in records.items() if r["error"]}
    for name, error in failed.items():
        print(f"bootbot: {args.kind}: {name}: {error}", file=sys.stderr)
    lines = f'[trees.{args.kind}]\npath = "{path}"\n'
    if args.config and _append_valid(args.config, lines, lambda data: data["trees"][args.kind]["path"] == str(path)):
        print(f"bootbot: {path} is the {args.kind} tree now ({args.config} says so)")
    else:
        print(f"bootbot: {path} is made; to use it, have your configuration say:\n{lines}", end="")
    return 1 if failed else 0


def _append_valid(file: Path, lines: str, says: Callable[[dict], bool]) -> bool:
    """Appends `lines` to a TOML file, kept only when the file then reads and `says` holds of it
    (it may have the table already): else the file is as it was."""
    import tomllib

    before = file.read_text()
    file.write_text(f"{before}\n{lines}")
    try:
        if says(tomllib.loads(file.read_text())):
            return True
    except (tomllib.TOMLDecodeError, KeyError, TypeError):
        pass
    file.write_text(before)
    return False


def _web(args, config, declared) -> int:
    from bot import settings
    from bot.reports import web

    listen = args.listen or config.get("web", "listen") or "127.0.0.1:8080"
    try:
        bound = web.server(settings.state_folder(config), listen, config.get("mail", "from"))
    except ValueError as e:
        raise UsageError(f"--listen: {e}") from None
    except OSError as e:
        raise UsageError(f"cannot serve on {listen}: {e.strerror or e}") from None
    print(f"bootbot: serving {web.url(bound)}", file=sys.stderr, flush=True)
    with bound:
        bound.serve_forever()
    return 0


def _status(args, config, declared) -> int:
    from bot import settings
    from bot.reports import health

    workers, away = None, ""
    if config.get("queue", "broker"):   # Celery is loaded only then
        from bot.queue import BrokerAway
        from bot.queue.dispatch import Dispatch
        try:
            workers = Dispatch(config).live()
        except BrokerAway as e:
            away = f"broker {config.get('queue', 'broker')}: unreachable ({e})"
    print("\n".join(health.lines(health.read(settings.state_folder(config), workers=workers)) + [away] * bool(away)))
    return 0


def _worker(args, config, declared) -> int:
    import logging
    import socket

    from bot.queue.worker import Worker

    if not config.get("queue", "broker"):
        raise UsageError("a worker needs queue.broker: the Redis the list bot sends its jobs through")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    Worker(config, args.name or config.get("worker", "name") or socket.gethostname()).run()
    return 0


def _version() -> str:
    from importlib import metadata
    try:
        return metadata.version("bootbot")
    except metadata.PackageNotFoundError:   # run from a checkout that was never installed
        return "(not installed)"


def _outbox(args, config, declared) -> int:
    """The operator's hand on the brake: held replies go out only when approved here."""
    import sqlite3
    from email.parser import BytesHeaderParser

    from bot import settings
    from bot.state import State
    from bot.state.outbox import OutboxChanged, ReplyState

    state = State(settings.state_folder(config).database)
    if args.action == "list":
        for each in state.outbox.every():
            headers = BytesHeaderParser().parsebytes(each.raw)
            print(f"{each.id:>5}  {each.state:<8} to {headers['To']}: {' '.join(str(headers['Subject']).split())}")
        return 0
    reply = state.outbox.get(args.id) if args.id is not None else None
    if reply is None:
        raise UsageError(f"no reply {args.id} in the outbox" if args.id else f"outbox {args.action}: which reply?")
    if args.action == "show":
        sys.stdout.buffer.write(reply.raw)
        return 0
    wanted, allowed = {"approve": (ReplyState.PENDING, (ReplyState.HELD,)),
                       "drop": (ReplyState.DROPPED, (ReplyState.HELD, ReplyState.PENDING))}[args.action]
    if reply.state not in allowed:
        raise UsageError(f"reply {args.id} is {reply.state}: it cannot be {args.action}d")
    try:
        state.outbox.change(reply, wanted)   # only as it was read: the bot may have sent it meanwhile
    except sqlite3.OperationalError as e:   # the bot holds the database while a mail goes out
        raise UsageError(f"the state database is busy ({e}): try again in a minute") from None
    except OutboxChanged:
        raise UsageError(f"reply {args.id} changed meanwhile: see bootbot outbox list") from None
    print(f"reply {args.id}: {wanted}" + (" (it goes out at the bot's next cycle)" if wanted == ReplyState.PENDING
                                          else ""))
    return 0


def _select(tree, names: str | None) -> list:
    known = tree.entries
    if not names:
        return list(known.values())
    chosen = [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in chosen if n not in known]
    if unknown or not chosen:
        raise UsageError(f"unknown entry {', '.join(unknown) or '(none)'}; {tree.name} has: {', '.join(known)}")
    return [known[n] for n in chosen]


def _show_progress(entry: str, result) -> None:
    if result is None:
        print(f"  {entry}: booting", file=sys.stderr, flush=True)
    else:
        print(result.progress_line(), file=sys.stderr, flush=True)


def _table(results, folder: Path) -> str:
    from bot.boots.locate import Location

    width = max(len(r.entry) for r in results) + 1
    rows = [f"{'entry':<{width}} {'status':<8} {'seconds':>7}  decided by"]
    for r in results:
        name = r.entry + ("*" if r.experimental else "")
        rows.append(f"{name:<{width}} {r.status:<8} {r.seconds:>7.1f}  {r.reason}")
        if r.location:
            rows.append(f"{'':<{width}} {'':<8} {'':>7}  {Location(**r.location)}")
    if any(r.experimental for r in results):
        rows.append("* experimental: shown, but does not fail the verdict unless configured to")
    rows.append(f"console logs: {folder}")
    return "\n".join(rows)


if __name__ == "__main__":
    sys.exit(main())
