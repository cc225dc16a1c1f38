"""brkwatch's options: what `brkwatch on` was asked for, as the status shows and keeps them."""

from dataclasses import dataclass


@dataclass
class Options:
    mmap: bool = False
    stop: bool = False
    bt: int = 0
    method: str = "auto"

    def text(self) -> str:
        parts = []
        if self.mmap:
            parts.append("--mmap")
        if self.stop:
            parts.append("--stop")
        if self.bt:
            parts.append(f"--bt {self.bt}")
        if self.method != "auto":
            parts.append(f"--method {self.method}")
        return " ".join(parts) or "(none)"

    def to_json(self) -> dict:
        return {"mmap": self.mmap, "stop": self.stop, "bt": self.bt, "method": self.method}
