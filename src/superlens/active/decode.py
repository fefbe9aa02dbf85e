"""Decoding an image file list in worker processes (numpy and PIL only: where fork is missing, a spawned worker imports this
module in ~0.2 s, without torch).

    arr_or_error = decode_chunk(paths, expected=(32, 32), resize=None)

Each worker decodes a chunk of files to uint8 [n, H, W, 3] (RGB; greyscale and palette files are
converted) and returns it; the first file it cannot use is returned as a status and a string naming
it ("size": another size than expected, "error": not decodable), so the parent raises one line and
writes nothing. The parent is superlens.active.image_cache.
"""
from __future__ import annotations

import numpy as np


def decode_chunk(paths: list[str], expected: tuple[int, int] | None, resize: int | None,
                 root: str) -> tuple[str, object]:
    """paths -> ("ok", uint8 [n, S, S, 3]), ("size", ...) or ("error", ...): one line naming the file.

    expected: (width, height) every image must have when ``resize`` is None (the first image's
    size, read by the parent). resize: decode each image and resize it (bilinear, PIL's antialiased
    filter) to resize x resize instead.
    """
    from PIL import Image

    if resize is not None:
        side_w = side_h = int(resize)
    else:
        side_w, side_h = expected
    out = np.empty((len(paths), side_h, side_w, 3), dtype=np.uint8)
    for i, p in enumerate(paths):
        rel = p[len(root):].lstrip("/") if p.startswith(root) else p
        try:
            with Image.open(p) as im:
                if resize is None and im.size != (side_w, side_h):
                    return "size", f"{rel} is {im.size[0]}x{im.size[1]}, expected {side_w}x{side_h}"
                im = im.convert("RGB")
                if resize is not None and im.size != (side_w, side_h):
                    im = im.resize((side_w, side_h), Image.BILINEAR)
                out[i] = np.asarray(im)
        except Exception as e:  # noqa: BLE001 - a broken file is one line naming it
            text = " ".join(str(e).split())
            return "error", f"cannot decode {rel} ({type(e).__name__}: {text})"
    return "ok", out
