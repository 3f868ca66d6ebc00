"""What this computer has (GPU or CPU, memory) and whether the chosen training fits in it.

The GUI process never imports torch: the GPU is found with `nvidia-smi` in a subprocess, the CPU and
RAM with psutil. The memory estimate and the trainable-parameter count come from `engine.train`
(`estimate_per_method`, `count_trainable`), which build a weightless (meta) model from its config.json;
they import torch, so the engine helper process works them out (engine.window_jobs.memory_estimate).
"""
from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from typing import Optional

import psutil
from PySide6.QtCore import QThreadPool, QTimer, Signal
from PySide6.QtWidgets import QVBoxLayout, QWidget

from engine import config as cfg
from engine import gpu_check
from gui.controller import Controller
from gui.style import label
from gui.engine_helper import helper
from gui.widgets.background import LatestJob
from gui.widgets.device_status import DeviceStatus

GIB = 1024 ** 3
# Settings that change the estimate; anything else leaves it alone.
ESTIMATE_KEYS = {"", "model.dir", "method.name", "method.lora_r", "method.target_modules",
                 "method.num_virtual_tokens", "training.batch_size", "training.micro_batch_size",
                 "data.max_length", "training.precision", "training.gradient_checkpointing"}


@dataclass
class Hardware:
    device: str  # "cuda" or "cpu"
    gpu_name: str
    gpu_memory: int  # bytes, 0 without a GPU
    cpu_name: str
    cores: int
    ram: int  # bytes
    smi: Optional[gpu_check.SmiFacts] = None

    @property
    def memory(self) -> int:
        """The memory training has to fit in: the GPU's on a GPU, else the RAM."""
        return self.gpu_memory if self.device == "cuda" else self.ram

    def describe(self) -> str:
        """The processor and memory (shown under the device line when training runs on a graphics card)."""
        return f"Processor: {self.cpu_name}, {self.cores} cores, {self.ram / GIB:.0f} GB memory."


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "processor"


def detect_hardware() -> Hardware:
    """Find the first NVIDIA GPU (via nvidia-smi) and the CPU and RAM; takes well under a second.

    `device` is "cuda" when a card is present; the DeviceStatus check then says whether torch can use it.
    """
    smi = gpu_check.smi_facts()
    return Hardware(device="cuda" if smi else "cpu", gpu_name=smi.name if smi else "",
                    gpu_memory=smi.memory_total if smi else 0, cpu_name=_cpu_name(),
                    cores=psutil.cpu_count(logical=False) or os.cpu_count() or 1,
                    ram=psutil.virtual_memory().total, smi=smi)


@dataclass
class Estimate:
    peak_bytes: Optional[int]
    trainable: Optional[int]
    total: Optional[int]
    note: str = ""
    per_method: Optional[dict] = None  # peak bytes of LoRA and QLoRA too: the plan recommends between them


def estimate(config, model_dir: str, device: str) -> Estimate:
    """Runs on a pool thread: peak memory and trainable weights, worked out by the engine helper process."""
    found = helper().call("memory_estimate", cfg.to_dict(config), model_dir, device, lane="estimate")
    return Estimate(found["peak_bytes"], found["trainable"], found["total"], per_method=found["per_method"])


class HardwarePanel(QWidget):
    """Hardware text, the peak-memory estimate with a fits / does-not-fit verdict, trainable parameters.

    Emits `changed` when the hardware or a new estimate is known (the plan uses both).
    """

    changed = Signal()

    def __init__(self, controller: Controller, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self.controller = controller
        self.hardware: Optional[Hardware] = None
        self.last_estimate: Optional[Estimate] = None
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.device = DeviceStatus(self)
        self.device.deviceChanged.connect(self._on_device)
        layout.addWidget(self.device)
        self.machine = label("", "hint")
        layout.addWidget(self.machine)
        self.memory = label("", "subtitle")
        layout.addWidget(self.memory)
        self.params = label("", "hint")
        layout.addWidget(self.params)
        self.method_note = label("", "warning")
        self.method_note.setVisible(False)
        layout.addWidget(self.method_note)
        self._hardware_job = LatestJob(self)
        self._hardware_job.finished.connect(self._on_hardware)
        self._hardware_job.failed.connect(self.machine.setText)
        estimate_pool = QThreadPool(self)
        estimate_pool.setMaxThreadCount(1)  # never takes a thread the dataset preview needs
        self._estimate_job = LatestJob(self, pool=estimate_pool)
        self._estimate_job.finished.connect(self._on_estimate)
        self._estimate_job.failed.connect(lambda message: self.memory.setText(f"No estimate: {message}"))
        # Typing a value changes the config on every keystroke; wait for a pause before estimating.
        self._debounce = QTimer(self, singleShot=True, interval=300)
        self._debounce.timeout.connect(self._request_estimate)
        controller.configChanged.connect(self._on_config_changed)
        self._hardware_job.submit(detect_hardware)

    def _on_hardware(self, hardware: Hardware) -> None:
        self.hardware = hardware
        self.machine.setText(hardware.describe())
        self.machine.setVisible(hardware.device == "cuda")  # on the processor, the device line says it all
        self.device.set_card(hardware.smi, f"the processor ({hardware.cpu_name}, {hardware.cores} cores, "
                                           f"{hardware.ram / GIB:.0f} GB memory)")
        self._update_method_note()
        self._request_estimate()
        self.changed.emit()

    def _on_device(self, device: str) -> None:
        """The card turned out usable or not: estimate for where training will really run."""
        if self.hardware is not None and device != self.hardware.device:
            self.hardware.device = device if (device == "cpu" or self.hardware.gpu_memory) else "cpu"
            self.machine.setVisible(self.hardware.device == "cuda")
            self._update_method_note()
            self._request_estimate()

    def _on_config_changed(self, key: str) -> None:
        if key in ("", "method.name"):
            self._update_method_note()
        if key in ESTIMATE_KEYS:
            self._debounce.start()

    def _update_method_note(self) -> None:
        """QLoRA's 4-bit layers need an NVIDIA GPU; the engine falls back to LoRA elsewhere: say so first."""
        without_gpu = self.hardware is not None and self.hardware.device != "cuda"
        show = without_gpu and self.controller.config.method.name == "qlora"
        self.method_note.setText("QLoRA needs an NVIDIA graphics card. On this computer it trains as plain LoRA "
                                 "(same result, more memory)." if show else "")
        self.method_note.setVisible(show)

    def _request_estimate(self) -> None:
        model_dir = self.controller.model_dir
        if self.hardware is None or not model_dir:
            return
        config, device = self.controller.build_config(), self.hardware.device
        self._estimate_job.submit(lambda: estimate(config, model_dir, device))

    def _on_estimate(self, result: Estimate) -> None:
        self.last_estimate = result
        self.device.set_need(result.peak_bytes if self.hardware.device == "cuda" else None)
        if result.peak_bytes is None:
            self.memory.setText(result.note)
        else:
            need, have = result.peak_bytes / GIB, self.hardware.memory / GIB
            where = "graphics card memory" if self.hardware.device == "cuda" else "memory"
            if result.peak_bytes <= self.hardware.memory * 0.9:
                self.memory.setText(f"✓ Needs about {need:.1f} GB of {have:.0f} GB {where}: it fits.")
            else:
                self.memory.setText(f"✗ Needs about {need:.1f} GB but this computer has {have:.0f} GB {where}. "
                                    "Choose QLoRA or LoRA, a smaller batch, or a shorter maximum length.")
        if result.trainable is not None and result.total:
            share = 100.0 * result.trainable / result.total
            self.params.setText(f"Trains {result.trainable:,} of {result.total:,} weights ({share:.3g} %).")
        else:
            self.params.setText("")
        self.changed.emit()
