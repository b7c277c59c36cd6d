"""The container image, built as an operator builds it (scripts/image: podman, a debootstrapped
debian:12), and run as its Dockerfile says: a real boot inside it, and a worker from it checking a
series for the bot outside."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from harness import ROOT, Queued

TAG = "localhost/bootbot:test"


def podman_run(*options: str) -> list[str]:
    """As the Dockerfile says to run it: runc, the host's network (the broker on loopback here), the
    capabilities bubblewrap needs, ulimits as scripts/image sets them."""
    limits = subprocess.run(["bash", "-c", "ulimit -Hn"], capture_output=True, text=True).stdout.strip()
    return ["podman", "--runtime", "runc", "run", "--rm", "--network", "host", "--security-opt", "seccomp=unconfined",
            "--ulimit", f"nofile={limits}:{limits}", "--ulimit", "nproc=32768:32768", *options, TAG]


@pytest.fixture(scope="module")
def image() -> str:
    built = subprocess.run([str(ROOT / "scripts" / "image"), TAG], capture_output=True, text=True, timeout=3600)
    assert built.returncode == 0, built.stderr[-4000:]
    return TAG


def boot_in_image(capabilities: str) -> str:
    done = subprocess.run([*podman_run("--cap-add", capabilities), "boot", "--bzimage", "/vmlinuz",
                           "--entries", "bios", "--accel", "tcg"], capture_output=True, text=True, timeout=600)
    assert done.returncode in (0, 1), done.stderr[-3000:]
    return done.stdout


def test_the_image_boots_with_the_capabilities_its_dockerfile_names(image):
    assert "bios  pass" in boot_in_image("SYS_ADMIN,NET_ADMIN")
    # without NET_ADMIN, bubblewrap cannot bring its loopback up: every boot is a lab error
    assert "bwrap: loopback: Failed RTM_NEWADDR" in boot_in_image("SYS_ADMIN")


def test_a_worker_from_the_image_checks_for_the_bot(image, tmp_path: Path, repo: Path):
    lab = Queued(tmp_path, repo)
    try:   # its configuration, tree and state at the same paths inside as outside
        lab.worker("in-image", image=podman_run("--cap-add", "SYS_ADMIN,NET_ADMIN", "-v", f"{tmp_path}:{tmp_path}"))
        lab.post("one")
        replies = lab.answered(1)
        assert "refused" in replies[0].message.get_body().get_content()
        assert "job 1: answered by in-image" in lab.log
        assert "in-image on " in lab.status()
    finally:
        lab.close()
