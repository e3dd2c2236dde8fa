"""Catching a model that runs on the CPU while Ollama says it is on the GPU.

Ollama reports the layers it *asked* the runner to offload (`size_vram` in `/api/ps`). When the
runner's GPU backend fails to start (a missing CUDA library, a driver mismatch), it can fall back
to the CPU while `ollama ps` still says "100% GPU". The GPU itself tells the truth: a model on it
holds VRAM in the runner's process and keeps the GPU busy while tokens stream. When neither is
seen over a few samples of a streaming reply, the claim is wrong.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from llmdeck.fit.planner import processor_split
from llmdeck.hardware import HardwareSnapshot
from llmdeck.ollama_api import RunningModel
from llmdeck.units import decimal_size, gib

# A GPU that decodes is busy far above this; idle desktops flicker a few percent.
IDLE_MARGIN_PERCENT = 5
# A GPU already busier than this before the reply (another program) proves nothing either way.
IDLE_CEILING_PERCENT = 30
# Samples in a row (while tokens flow) before warning: the first ones can precede the GPU's work.
SAMPLES_NEEDED = 3


@dataclass
class OffloadCheck:
    idle_margin_percent: int = IDLE_MARGIN_PERCENT
    samples_needed: int = SAMPLES_NEEDED
    _idle: dict[int, int] = field(default_factory=dict)
    _suspicious: int = 0

    def observe(
        self, snapshot: HardwareSnapshot, model: RunningModel | None, tokens_flowing: bool
    ) -> str | None:
        """Feed one hardware sample; returns the warning while the claim looks false, else None.

        `model` is the chat's model as `/api/ps` last reported it; `tokens_flowing` whether a reply
        is streaming tokens right now.
        """
        gpus = snapshot.gpu.gpus
        if snapshot.source != "measured" or not gpus:
            self._suspicious = 0
            return None  # nothing measured to hold the claim against (no NVML, a recorded machine)
        if not tokens_flowing:
            # Between replies the GPU is at rest: that is the idle level to compare with.
            for gpu in gpus:
                if gpu.utilization_percent is not None:
                    self._idle[gpu.index] = gpu.utilization_percent
            self._suspicious = 0
            return None
        if model is None or model.size_vram <= 0:
            self._suspicious = 0
            return None
        runner_vram = [gpu.runner_vram_bytes for gpu in gpus]
        utilisation = [gpu.utilization_percent for gpu in gpus]
        if all(value is None for value in runner_vram) and all(value is None for value in utilisation):
            return None  # this driver reports neither: no evidence either way
        holds_vram = any(value for value in runner_vram)
        busy = any(
            value is not None
            and value > min(self._idle.get(gpu.index, 0), IDLE_CEILING_PERCENT) + self.idle_margin_percent
            for gpu, value in zip(gpus, utilisation, strict=True)
        )
        if holds_vram or busy:
            self._suspicious = 0
            return None
        self._suspicious += 1
        if self._suspicious < self.samples_needed:
            return None
        return self._describe(snapshot, model)

    def _describe(self, snapshot: HardwareSnapshot, model: RunningModel) -> str:
        seen = []
        for gpu in snapshot.gpu.gpus:
            parts = []
            if gpu.runner_vram_bytes is not None:
                parts.append(f"runner holds {gib(gpu.runner_vram_bytes)}")
            if gpu.utilization_percent is not None:
                parts.append(f"utilisation {gpu.utilization_percent}%")
            seen.append(f"GPU {gpu.index}: " + ", ".join(parts))
        split = processor_split(model.size, model.size_vram)
        return (
            f"running on CPU despite GPU offload: Ollama reports {split} "
            f"({decimal_size(model.size_vram)} on GPU) for {model.name}, but while tokens streamed "
            f"NVML saw {'; '.join(seen)}. Check the server log for a CUDA/ROCm library that failed to load."
        )
