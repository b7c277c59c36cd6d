"""Builds run confined and limited: a series' Makefile is code anyone on the list can post.

A fake Linux tree (a Makefile with the targets the Linux declaration calls) stands in for the
kernel, so each hostile recipe runs in seconds through the same build function, declaration and
sandbox as a real build."""
from __future__ import annotations

import dataclasses
import os
import shutil
import socket
import uuid
from pathlib import Path

import pytest
from conftest import ENTRIES, LINUX

from bot import config as configuration
from bot.sandbox import Sandbox, SandboxLimits
from bot.trees import build as build_module

UID = configuration.load().get("sandbox", "uid") + 1
ROOMY = SandboxLimits(wall_seconds=120, cpu_seconds=60, memory_mb=1024, processes=64, file_mb=16, log_mb=4)


def fake_linux(root: Path, recipe: str, files: dict[str, str]) -> Path:
    """A tree whose `make bzImage` runs `recipe` (shell lines) and then makes a bzImage."""
    tree = root / "linux"
    (tree / "scripts/kconfig").mkdir(parents=True)
    files = {"failing-step.sh": FAILING_STEP, **files}
    for name, text in files.items():
        (tree / name).write_text(text)
    lines = "".join(f"\t{line}\n" for line in recipe.splitlines())
    (tree / "Makefile").write_text(
        "tinyconfig olddefconfig:\n\t@echo '# fake' >> $(O)/.config\n"
        f"bzImage:\n{lines}\t@mkdir -p $(O)/arch/x86/boot && echo image > $(O)/arch/x86/boot/bzImage\n")
    merge = tree / "scripts/kconfig/merge_config.sh"
    # -m -O OUT CONFIG FRAGMENT; like the real one, it makes its temporary file in the current directory
    merge.write_text('#!/bin/sh\nset -e\nt=$(mktemp ./.tmp.config.XXXXXXXXXX)\n'
                     'cat "$4" "$5" > "$t"\ncp "$t" "$4"\nrm "$t"\n')
    merge.chmod(0o755)
    return tree


def run_build(tmp_path: Path, recipe: str, limits: SandboxLimits = ROOMY,
              files: dict[str, str] = {}, warm: bool = False) -> build_module.Build:
    """Builds the fake tree, in a new build folder unless `warm` (the one built before, kept)."""
    if warm:
        shutil.rmtree(tmp_path / "linux")
    source = fake_linux(tmp_path, recipe, files)
    out = tmp_path / "build"
    out.mkdir(exist_ok=warm)
    fragment = tmp_path / "linux.config"
    fragment.write_text("CONFIG_FAKE=y\n")
    # the Linux declaration, but for the fragment: the fake .config holds only what it appends
    tree = dataclasses.replace(LINUX, fragment=fragment, artifacts={"bzimage": "arch/x86/boot/bzImage"})
    return build_module.build(tree, source, out, 1, Sandbox(UID, limits))


# The end of a configure step that failed as the real one did on a new machine.
FAILING_STEP = """echo "make[1]: Entering directory '$1'"
echo '  GEN     Makefile'
echo '#'
echo '# configuration written to .config'
echo "make[1]: Leaving directory '$1'"
echo "mktemp: failed to create file via template './.tmp.config.XXXXXXXXXX': Read-only file system" >&2
exit 1
"""


def tight(**limits) -> SandboxLimits:
    return SandboxLimits(**{**ROOMY.__dict__, **limits})


def test_a_harmless_build_passes_as_an_unprivileged_user(tmp_path):
    built = run_build(tmp_path, "id -u > $(O)/uid")
    assert built.ok, built.log.read_text()
    assert built.artifacts["bzimage"].read_text() == "image\n"
    out = built.log.parent
    assert (out / ".config").read_text() == "# fake\nCONFIG_FAKE=y\n# fake\n"   # configured in the sandbox
    expected = UID if os.geteuid() == 0 else os.getuid()
    assert (out / "uid").read_text().strip() == str(expected)


def test_a_failed_step_is_explained_by_its_last_lines_without_make_chatter(tmp_path):
    built = run_build(tmp_path, "sh failing-step.sh $(O)")
    assert not built.ok and built.limit is None
    assert built.errors[-2:] == ["mktemp: failed to create file via template './.tmp.config.XXXXXXXXXX': "
                                 "Read-only file system", "make: *** [Makefile:4: bzImage] Error 1"]
    assert not any("directory" in line for line in built.errors), built.errors
    assert "configuration written to .config" in "\n".join(built.errors)


@pytest.mark.parametrize("output, expected", [
    (["make[2]: Entering directory '/b'", "  CC      arch/x86/boot/compressed/misc.o",
      "misc.c:12:5: error: expected expression before ';' token", "   12 | int x = ;",
      "make[3]: *** [scripts/Makefile.build:250: misc.o] Error 1", "make[2]: Leaving directory '/b'"],
     ["misc.c:12:5: error: expected expression before ';' token"]),
    (["make[1]: Entering directory '/b'", *[f"  CC  file{n}.o" for n in range(20)],
      "make[2]: *** No rule to make target 'x.o', needed by 'built-in.a'.  Stop.",
      *[f"  CC  more{n}.o" for n in range(20)], "make[1]: Leaving directory '/b'", "make: *** [Makefile:222: __sub-make] Error 2"],
     ["make[2]: *** No rule to make target 'x.o', needed by 'built-in.a'.  Stop.",
      *[f"  CC  more{n}.o" for n in range(13, 20)], "make: *** [Makefile:222: __sub-make] Error 2"]),
])
def test_what_explains_a_failed_step(output, expected):
    assert build_module.explain("\n".join(output)) == expected


@pytest.mark.parametrize("recipe, limits, name, says", [
    ("sleep 600", tight(wall_seconds=2), "wall-clock", "the wall-clock limit (2 s)"),
    ("sh -c 'while :; do :; done'", tight(cpu_seconds=1), "cpu", "the CPU time limit (1 s per process)"),
    ("python3 -c 'bytearray(600 << 20)'", tight(memory_mb=300), "memory", "the memory limit (300 MiB per process)"),
    ("sh -c 'for i in $$(seq 100); do sleep 600 & done; wait'", tight(processes=20), "processes",
     "the process limit (20)"),
    ("head -c 5000000 /dev/zero > $(O)/big", tight(file_mb=1), "file", "the file size limit (1 MiB)"),
    ("yes 'a flood of output'", tight(log_mb=1), "log", "the output limit (1 MiB of log)"),
])
def test_a_build_over_a_limit_is_stopped_and_the_limit_named(tmp_path, recipe, limits, name, says):
    built = run_build(tmp_path, recipe, limits)
    assert not built.ok and built.limit == name, built.log.read_text()[-2000:]
    assert built.errors[0] == f"stopped: the build went over {says}"
    assert built.log.stat().st_size <= ROOMY.log_mb << 20


def test_the_build_sees_no_network_no_host_files_and_cannot_write_outside(tmp_path):
    server = socket.create_server(("127.0.0.1", 0))
    server.setblocking(False)
    port = server.getsockname()[1]
    secret = tmp_path / "secret.txt"
    secret.write_text("the operator's secret\n")
    escape = f"/tmp/bootbot-escape-{uuid.uuid4().hex}"
    probe = f"""
try() {{ name=$1; shift; if "$@" 2>/dev/null; then echo "$name=yes"; else echo "$name=no"; fi; }}
try network python3 -c "import socket; socket.create_connection(('127.0.0.1', {port}), 2)"
try read-host-file cat {secret}
try write-source touch evil
try write-tmp touch {escape}
try write-build touch "$1/made"
"""
    built = run_build(tmp_path, "sh probe.sh $(O) > $(O)/probe.txt", files={"probe.sh": probe})
    assert built.ok, built.log.read_text()
    seen = dict(line.split("=") for line in (built.log.parent / "probe.txt").read_text().split())
    assert seen == {"network": "no", "read-host-file": "no", "write-source": "no",
                    "write-tmp": "yes", "write-build": "yes"}
    with pytest.raises(BlockingIOError):
        server.accept()   # nothing reached the host's loopback
    assert not (tmp_path / "linux/evil").exists() and not Path(escape).exists()


def test_no_entry_gives_the_guest_a_network():
    for e in ENTRIES.values():
        args = e.qemu_args({"accel": "tcg", "nonce": "0", "append": ""})
        assert "-nodefaults" in args and not {"-net", "-nic", "-netdev"} & set(args), e.name


def test_a_fragment_line_a_commit_turns_off_fails_that_build_in_a_warm_folder_too(tmp_path):
    """A commit whose Kconfig turns a line of the fragment off (the base's, or a series'): make
    re-syncs .config itself in a folder configured before, so every build is checked: a failed
    build of that commit, which the check then attributes, not a lab error that ends the check."""
    assert run_build(tmp_path, "true").ok   # configured, and the fragment's line holds
    assert run_build(tmp_path, "sed -i /CONFIG_FAKE/d $(O)/.config", warm=True).errors == [
        f"CONFIG_FAKE is off in the built configuration (a dependency of it is off): see {tmp_path / 'linux.config'}"]


def test_a_build_that_skips_an_artifact_fails_naming_it(tmp_path):
    """As Xen's build does without a PE linker: make succeeds, and there is no xen.efi."""
    assert run_build(tmp_path, "true").ok
    tree = dataclasses.replace(LINUX, fragment=tmp_path / "linux.config",
                               artifacts={"bzimage": "arch/x86/boot/bzImage", "efi": "xen.efi"})
    built = build_module.build(tree, tmp_path / "linux", tmp_path / "build", 1, Sandbox(UID, ROOMY))
    assert not built.ok and built.errors == ["the build made no xen.efi"]
