"""The window's side of install and device: the Method view names the training device and why a card is
unusable (faked nvidia-smi and torch facts: no GPU here), the GPU-support installer, the Data folder window."""
from __future__ import annotations

import json
import os

import pytest

from engine import gpu_check, gpu_runtime, paths
from engine.download import DownloadError
from gui.controller import Controller
from gui.state import default_config

WAIT_MS = 30000
GIB = 1024 ** 3
CARD = gpu_check.SmiFacts("NVIDIA GeForce RTX 3060", 12 * GIB, 11 * GIB, "535.104.05", "12.2")


@pytest.fixture
def card_without_cuda_build(monkeypatch):
    """An NVIDIA card that nvidia-smi sees, and a torch without CUDA (the desktop bundle's)."""
    monkeypatch.setattr(gpu_check, "smi_facts", lambda timeout=10: CARD)
    monkeypatch.setattr(gpu_check, "probe_in_child", lambda timeout=120: {"cuda_build": None, "available": False})


def test_method_view_says_the_card_is_unused_and_offers_gpu_support(qtbot, card_without_cuda_build, tmp_path):
    from gui.views.method_view import MethodView

    view = MethodView(Controller(default_config()))
    qtbot.addWidget(view)
    view.resize(1280, 800)
    view.show()
    device = view.hardware.device
    qtbot.waitUntil(lambda: device.report is not None and device.facts is not None, timeout=WAIT_MS)
    assert device.summary.text().startswith("Training will use the processor (")
    assert "RTX 3060 is not used" in device.problem.text() and "no CUDA build installed" in device.problem.text()
    assert device.install_button.isVisible() and view.hardware.hardware.device == "cpu"
    assert view.grab().save(str(tmp_path / "method-gpu-unused.png"))


def test_a_driver_too_old_is_said_without_offering_a_download(qtbot, monkeypatch):
    from gui.widgets.device_status import DeviceStatus

    old = gpu_check.SmiFacts(CARD.name, 12 * GIB, 11 * GIB, "470.82.01", "11.4")
    facts = {"cuda_build": "12.8", "available": False,
             "error": "RuntimeError: The NVIDIA driver on your system is too old (found version 11040)."}
    status = DeviceStatus(probe=lambda: facts)
    qtbot.addWidget(status)
    status.set_card(old, "the processor")
    qtbot.waitUntil(lambda: status.facts is not None, timeout=WAIT_MS)
    assert "driver is too old" in status.problem.text() and "Install the newest NVIDIA driver" in status.problem.text()
    assert not status.install_button.isVisibleTo(status)


def test_gpu_support_dialog_shows_size_and_time_then_installs(qtbot, monkeypatch):
    from gui.gpu_install_dialog import GpuInstallDialog

    plan = gpu_runtime.Plan(disk_bytes=4_700_000_000)
    plan.files = [None] * 20
    monkeypatch.setattr(gpu_runtime.Plan, "download_bytes", property(lambda self: 2_730_000_000))
    monkeypatch.setattr(gpu_runtime, "plan", lambda progress=None: plan)

    def fake_install(the_plan, progress, cancelled):
        progress("Downloading GPU support (torch): 1.0 GB of 2.7 GB", 0.4)
        return paths.data_dir() / "runtime"

    monkeypatch.setattr(gpu_runtime, "install", fake_install)
    dialog = GpuInstallDialog()
    qtbot.addWidget(dialog)
    qtbot.waitUntil(dialog.install_button.isEnabled, timeout=WAIT_MS)
    assert "2.7 GB to download" in dialog.text.text() and "4.7 GB on disk" in dialog.text.text()
    assert "min at 50 Mbit/s" in dialog.text.text()
    with qtbot.waitSignal(dialog.installed, timeout=WAIT_MS):
        dialog.install_button.click()
    assert "installed" in dialog.text.text()


def test_gpu_support_dialog_offline_says_so(qtbot, monkeypatch):
    from gui.gpu_install_dialog import GpuInstallDialog

    def offline(progress=None):
        raise DownloadError("Could not download GPU support: this computer is not connected to the internet.",
                            "offline")

    monkeypatch.setattr(gpu_runtime, "plan", offline)
    dialog = GpuInstallDialog()
    qtbot.addWidget(dialog)
    qtbot.waitUntil(lambda: "not connected" in dialog.text.text(), timeout=WAIT_MS)
    assert not dialog.install_button.isEnabled()


def test_data_folder_window_shows_sizes_and_moves_the_folder(qtbot, monkeypatch, tmp_path):
    from gui.storage_dialog import StorageDialog

    monkeypatch.delenv("TUNESMITH_HOME")
    home = tmp_path / "data"
    monkeypatch.setattr(paths, "default_data_dir", lambda: home)
    monkeypatch.setattr(paths, "location_file", lambda: tmp_path / "config" / "data-folder.txt")
    (home / "runs" / "r1").mkdir(parents=True)
    (home / "runs" / "r1" / "run-info.json").write_text(json.dumps({"base_model_path": str(home / "models" / "m")}))
    (home / "models" / "m").mkdir(parents=True)
    (home / "models" / "m" / "model.safetensors").write_bytes(os.urandom(2_000_000))
    controller = Controller(default_config())
    dialog = StorageDialog(controller)
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitUntil(lambda: bool(dialog.parts), timeout=WAIT_MS)
    texts = [dialog.grid.itemAt(i).widget().text() for i in range(dialog.grid.count())]
    assert "Models" in texts and "2.0 MB" in texts and "GPU support" in texts and "Total" in texts
    assert dialog.grab().save(str(tmp_path / "data-folder.png"))
    with qtbot.waitSignal(dialog.moved, timeout=WAIT_MS) as moved:
        dialog.move_to(str(tmp_path / "bigger"))
    assert moved.args == [str((tmp_path / "bigger").resolve())] and paths.data_dir() == tmp_path / "bigger"
    assert dialog.folder.text() == str(tmp_path / "bigger") and not controller.busy
    assert json.loads((tmp_path / "bigger" / "runs" / "r1" / "run-info.json").read_text())["base_model_path"] == \
        str((tmp_path / "bigger" / "models" / "m").resolve())
