"""The results pages and their JSON, read from the result folders (through History) and nothing
else: read-only, no JavaScript, every text from a check escaped (subjects, consoles and logs are
anyone's words). A WSGI application, served by `bootbot web` and beside the list bot by `serve`.

    /                              recent checks; ?verdict= &tree= &entry= &author= &page=
    /checks/FOLDER                 one check: report, entries and attempts, consoles, builds
    /checks/FOLDER.tar.gz          its result folder, whole
    /checks/FOLDER/files/PATH      one file of it, as plain text
    /entries/TREE/ENTRY            an entry's history: status and boot seconds per check
    /api/checks, /api/checks/FOLDER, /api/entries/TREE/ENTRY   the same as JSON
    /metrics                       the bot's health in Prometheus' text format
"""
from __future__ import annotations

import json
import logging
import re
from html import escape
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import parse_qs, quote, urlencode

from prometheus_client import CONTENT_TYPE_LATEST

from bot import folders
from bot.folders import StateFolder
from bot.reports import health, text
from bot.sources.inbox import thread_link
from bot.state.history import Filter, History

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
log = logging.getLogger("bootbot.web")
COLOURS = {"pass": "#2e7d32", "skip": "#9e9e9e", "flaky": "#f9a825", "fail": "#c62828", "timeout": "#6a1b9a",
           "error": "#455a64", "regression": "#c62828", "apply-failed": "#ef6c00", "build-failed": "#ef6c00",
           "refused": "#6d4c41"}
STYLE = ("body{font-family:sans-serif;margin:1em 2em}table{border-collapse:collapse}td,th{padding:2px 8px;"
         "border-bottom:1px solid #ddd;text-align:left}pre{background:#f6f6f6;padding:8px;overflow-x:auto}"
         ".s{color:#fff;padding:1px 6px;border-radius:3px;font-size:90%;white-space:nowrap}mark{background:#ffcdd2}")


class NotFound(Exception):
    pass


class Pages:
    def __init__(self, state: StateFolder, sender: str):
        self.state, self.results, self.sender = state, state.results, sender   # the bot's address, as its mail names it
        self.history = History(state)

    def __call__(self, environ, start_response):
        path, query = environ.get("PATH_INFO", "/"), parse_qs(environ.get("QUERY_STRING", ""))
        if environ.get("REQUEST_METHOD", "GET") not in ("GET", "HEAD"):   # nothing here changes state
            return _answer(start_response, "405 Method Not Allowed", "text/plain", b"read-only\n")
        try:
            status, kind, body = self.route(path, {k: v[0] for k, v in query.items()})
        except NotFound as e:
            status, kind, body = "404 Not Found", "text/html", _page("Not found", f"<p>{escape(str(e))}</p>")
        except Exception as e:   # a folder an older bootbot wrote, say: one line in the log, never a traceback
            log.warning("page %s failed: %s", path, " ".join(f"{type(e).__name__}: {e}".split()))
            status, kind, body = "500 Internal Server Error", "text/html", _page("Not readable", "<p>see the log</p>")
        if environ.get("REQUEST_METHOD") == "HEAD":
            body = b""
        return _answer(start_response, status, kind, body if isinstance(body, bytes) else body.encode())

    def route(self, path: str, query: dict[str, str]) -> tuple[str, str, str | bytes]:
        if path == "/metrics":
            return "200 OK", CONTENT_TYPE_LATEST, health.metrics(health.read(self.state, self.history))
        api = path.startswith("/api/")
        parts = [p for p in path.removeprefix("/api").split("/") if p]
        if not parts:
            return self.index(query, api)
        if parts[0] == "checks" and len(parts) == 1 and api:
            return self.index(query, True)
        if parts[0] == "checks" and len(parts) == 2 and parts[1].endswith(".tar.gz") and not api:
            return "200 OK", "application/gzip", folders.pack(self.folder(parts[1].removesuffix(".tar.gz")))
        if parts[0] == "checks" and len(parts) >= 4 and parts[2] == "files" and not api:
            return "200 OK", "text/plain; charset=utf-8", self.file(self.folder(parts[1]), parts[3:])
        if parts[0] == "checks" and len(parts) == 2:
            return self.check(self.folder(parts[1]), api)
        if parts[0] == "entries" and len(parts) == 3 and all(map(_NAME.fullmatch, parts[1:])):
            return self.entry(parts[1], parts[2], api)
        raise NotFound(f"no page {path}")

    def folder(self, name: str) -> Path:
        folder = self.results / name
        if not folders.FOLDER.fullmatch(name) or not (folder / folders.OUTCOME).is_file():
            raise NotFound(f"no check {name}")
        return folder

    def index(self, query: dict[str, str], api: bool):
        wanted = Filter(**{k: query.get(k, "") for k in Filter.__dataclass_fields__})
        page = min(int(query["page"]), 10 ** 6) if query.get("page", "").isdecimal() and query["page"].isascii() else 0
        rows, more = self.history.checks(wanted, page)
        if api:
            return _json({"checks": [{**dict(r), "entries": json.loads(r["entries"])} for r in rows], "more": more})
        form = "".join(f'{escape(k)} <input name="{k}" value="{escape(getattr(wanted, k))}" size="12"> '
                       for k in Filter.__dataclass_fields__)
        lines = [f'<form method="get">{form}<button>filter</button></form><table><tr><th>when</th><th>source</th>'
                 "<th>tree</th><th>series</th><th>verdict</th><th>entries</th></tr>"]
        for r in rows:
            title = f"{r['subject']}" + (f" (v{r['version']})" if r["version"] > 1 else "")
            link = f' <a href="{escape(r["link"])}">thread</a>' if r["link"].startswith("http") else ""
            entries = " ".join(f'<a href="/entries/{quote(r["tree"])}/{quote(n)}">{_status(s, n)}</a>'
                               for n, (s, _) in json.loads(r["entries"]).items())
            lines.append(f'<tr><td>{_when(r["folder"])}</td><td>{escape(r["source"])}</td><td>{escape(r["tree"])}</td>'
                         f'<td><a href="/checks/{r["folder"]}">{escape(title)}</a> by {escape(r["author"])}{link}</td>'
                         f'<td>{_status(r["verdict"])}</td><td>{entries}</td></tr>')
        lines.append("</table>")
        keep = {k: v for k, v in query.items() if k != "page"}
        if page:
            lines.append(f'<a href="?{escape(urlencode({**keep, "page": page - 1}))}">newer</a> ')
        if more:
            lines.append(f'<a href="?{escape(urlencode({**keep, "page": page + 1}))}">older</a>')
        return "200 OK", "text/html", _page("bootbot: checks", "\n".join(lines))

    def check(self, folder: Path, api: bool):
        if api:
            return "200 OK", "application/json", (folder / folders.OUTCOME).read_bytes()
        outcome = folders.read(folder)
        body = [f'<p><a href="/">all checks</a> · <a href="/checks/{folder.name}.tar.gz">result folder</a>'
                + (f' · <a href="{escape(outcome.origin["link"])}">thread</a>'
                   if outcome.origin.get("link", "").startswith("http") else "") + "</p>",
                f"<pre>{escape(text.text(outcome, folder, self.sender))}</pre>", _culprit(outcome),
                "<h2>Entries</h2><table><tr><th>entry</th>"
                "<th>with the change</th><th>base</th><th>attempts</th><th>accelerator</th></tr>"]
        for name, e in outcome.entries.items():
            tries = ", ".join(f'<a href="/checks/{folder.name}/files/{quote(a["log"])}">{escape(a["status"])} '
                              f'{a["seconds"]:.1f} s</a>' for a in e.attempts + e.base_attempts)
            body.append(f'<tr><td><a href="/entries/{quote(outcome.tree or "")}/{quote(name)}">{escape(name)}</a></td>'
                        f"<td>{_status(e.status)}</td><td>{_status(e.baseline)}</td><td>{tries}</td>"
                        f"<td>{escape(e.accel)}</td></tr>")
        body.append("</table>")
        for name, e in outcome.entries.items():
            base = e.base_attempts[-1] if e.base_attempts else None   # decided by its own line: no block
            shown = [("with the change", e.log, e)] + ([("on the base", base["log"], SimpleNamespace(
                reason=base["reason"], block=[]))] if base else [])
            for label, log, decided in shown:
                excerpt = text.console_excerpt(f"{name} {label}", folder / log, decided)
                marked = "\n".join(f"<mark>{escape(line)}</mark>" if line.startswith(text.MARK) else escape(line)
                                   for line in excerpt.splitlines())
                body.append(f"<h3>{escape(name)} {label}</h3><pre>{marked}</pre>")
        if outcome.builds:
            body.append("<h2>Builds</h2><ul>" + "".join(
                f'<li>{escape(b.phase)} {escape(b.commit[:12])}: {"ok" if b.ok else "failed"} in {b.seconds:.0f} s, '
                + (f'<a href="/checks/{folder.name}/files/{quote(b.log)}">log</a>' if b.log else "no log")
                + (f"<pre>{escape(chr(10).join(b.errors))}</pre>" if b.errors else "") + "</li>"
                for b in outcome.builds) + "</ul>")
        title = f"bootbot: {outcome.verdict} for {outcome.series['subject']}"
        return "200 OK", "text/html", _page(title, "\n".join(body))

    def entry(self, tree: str, name: str, api: bool):
        runs = self.history.entry(tree, name)
        if api:
            return _json([{"folder": f, "status": s, "seconds": t} for f, s, t in runs])
        if not runs:
            raise NotFound(f"no check booted {tree} {name}")
        rows = "".join(f'<tr><td><a href="/checks/{f}">{_when(f)}</a></td><td>{_status(s)}</td><td>{t:.1f}</td></tr>'
                       for f, s, t in reversed(runs))
        body = (f'<p><a href="/">all checks</a></p>{picture(runs)}<table><tr><th>check</th><th>status</th>'
                f"<th>seconds</th></tr>{rows}</table>")
        return "200 OK", "text/html", _page(f"bootbot: {tree} {name}", body)

    def file(self, folder: Path, parts: list[str]) -> bytes:
        if any("\0" in part for part in parts):
            raise NotFound("no such file")
        path = (folder / "/".join(parts)).resolve()
        if not path.is_relative_to(folder.resolve()) or not path.is_file():
            raise NotFound(f"no file {'/'.join(parts)} in {folder.name}")
        return path.read_bytes()


def _culprit(outcome: folders.Outcome) -> str:
    """A link to the first bad patch's mail, or to a commit's posting, where known."""
    p = outcome.culprit or {}
    url = p.get("link") or thread_link(outcome.origin.get("archive", ""), p.get("msgid", ""))
    if not url.startswith("http"):
        return ""
    return f'<p>First bad: <a id="culprit" href="{escape(url)}">{escape(p["subject"])}</a></p>'


def picture(runs: list[tuple[str, str, float]]) -> str:
    """An SVG of an entry's checks, oldest at the left: a bar per check as tall as its boot took,
    coloured by its status."""
    width, height, most = 8, 120, max([t for _, _, t in runs] + [0.1])
    bars = "".join(f'<rect x="{i * width}" y="{height - max(2, t / most * height):.1f}" width="{width - 1}" '
                   f'height="{max(2, t / most * height):.1f}" fill="{COLOURS.get(s, "#000")}">'
                   f"<title>{escape(f)}: {escape(s)}, {t:.1f} s</title></rect>" for i, (f, s, t) in enumerate(runs))
    return (f'<svg id="history" xmlns="http://www.w3.org/2000/svg" width="{max(1, len(runs)) * width}" '
            f'height="{height}" role="img"><title>status and boot seconds per check</title>{bars}</svg>'
            f"<p>Longest boot: {most:.1f} s. Green: pass, yellow: flaky, red: fail, purple: timeout.</p>")


def _status(status: str, label: str = "") -> str:
    return f'<span class="s" style="background:{COLOURS.get(status, "#000")}">{escape(label or status)}</span>'


def _when(folder: str) -> str:
    return f"{folder[:4]}-{folder[4:6]}-{folder[6:8]} {folder[9:11]}:{folder[11:13]}"


def _page(title: str, body: str) -> str:
    return (f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{escape(title)}</title>'
            f"<style>{STYLE}</style></head><body><h1>{escape(title)}</h1>{body}</body></html>")


def _json(data) -> tuple[str, str, str]:
    return "200 OK", "application/json", json.dumps(data, indent=1)


def _answer(start_response, status: str, kind: str, body: bytes):
    start_response(status, [("Content-Type", kind), ("Content-Length", str(len(body))),
                            ("X-Content-Type-Options", "nosniff"),
                            ("Content-Security-Policy",
                             "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'")])
    return [body]


LISTEN = re.compile(r"([^\s:]*):(\d{1,5})")


def server(state: StateFolder, listen: str, sender: str):
    """The pages bound to `listen` ("host:port"; port 0: any free one), a thread per request;
    ValueError for a listen that is no host:port, OSError when it cannot be bound."""
    from socketserver import ThreadingMixIn
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

    class Server(ThreadingMixIn, WSGIServer):
        daemon_threads = True

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args) -> None:   # a line per request is not the bot's log
            pass

    host, port = address(listen)
    return make_server(host, port, Pages(state, sender), server_class=Server, handler_class=Quiet)


def address(listen: str) -> tuple[str, int]:
    """"host:port" as a host and a port; ValueError when it is not one."""
    match = LISTEN.fullmatch(listen)
    if not match or int(match[2]) > 65535:
        raise ValueError(f"{listen!r} is not HOST:PORT")
    return match[1], int(match[2])


def url(bound) -> str:
    return f"http://{bound.server_address[0]}:{bound.server_port}/"
