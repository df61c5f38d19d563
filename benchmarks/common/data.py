"""Where the shared recordings are: $SPEECH_DIR, else ../shared/speech beside the checkout
(a checkout elsewhere sets SPEECH_DIR)."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SPEECH = Path(os.environ.get("SPEECH_DIR", ROOT.parent / "shared" / "speech"))
