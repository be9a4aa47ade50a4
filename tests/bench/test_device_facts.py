import os
import stat

from anymodal.bench.device_facts import device_facts

SHOW_PINNED = """SOC family:tegra234  Machine:NVIDIA Jetson AGX Orin Developer Kit
Online CPUs: 0-11
cpu0: Online=1 Governor=schedutil MinFreq=2201600 MaxFreq=2201600 CurrentFreq=2201600 IdleStates: WFI=0
cpu1: Online=1 Governor=schedutil MinFreq=2201600 MaxFreq=2201600 CurrentFreq=2201600 IdleStates: WFI=0
GPU MinFreq=1300500000 MaxFreq=1300500000 CurrentFreq=1300500000
"""


def _tool(bindir, name, stdout, code=0):
    path = bindir / name
    path.write_text(f"#!/bin/sh\ncat <<'EOF'\n{stdout}EOF\nexit {code}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def _jetson_root(tmp_path, governor="schedutil"):
    root = tmp_path / "root"
    (root / "proc/device-tree").mkdir(parents=True)
    (root / "proc/device-tree/model").write_bytes(b"NVIDIA Jetson AGX Orin Developer Kit\x00")
    for cpu in (0, 1):
        d = root / f"sys/devices/system/cpu/cpu{cpu}/cpufreq"
        d.mkdir(parents=True)
        (d / "scaling_governor").write_text(governor + "\n")
    (root / "etc").mkdir()
    (root / "etc/nv_tegra_release").write_text("# R36 (release), REVISION: 4.3\n")
    return root


def test_jetson_board_power_mode_and_pinned_clocks(tmp_path, monkeypatch):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    _tool(bindir, "nvpmodel", "NV Power Mode: MAXN\n0\n")
    _tool(bindir, "jetson_clocks", SHOW_PINNED)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    facts = device_facts(_jetson_root(tmp_path))
    assert facts["governor"] == "schedutil"
    assert facts["jetson"] == {"model": "NVIDIA Jetson AGX Orin Developer Kit", "nvpmodel": "MAXN",
                               "jetson_clocks": True, "l4t": "# R36 (release), REVISION: 4.3"}


def test_unpinned_clocks_and_tools_that_need_root(tmp_path, monkeypatch):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    _tool(bindir, "jetson_clocks", SHOW_PINNED.replace("MinFreq=2201600 MaxFreq", "MinFreq=729600 MaxFreq"))
    _tool(bindir, "nvpmodel", "nvpmodel: must be run as root\n", code=1)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    jetson = device_facts(_jetson_root(tmp_path))["jetson"]
    assert jetson["jetson_clocks"] is False and jetson["nvpmodel"] is None


def test_not_a_jetson(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no tools at all
    root = _jetson_root(tmp_path, governor="performance")
    (root / "proc/device-tree/model").write_text("Raspberry Pi 5 Model B\x00")
    assert device_facts(root) == {"governor": "performance", "jetson": None}
    assert device_facts(tmp_path / "empty") == {"governor": None, "jetson": None}
