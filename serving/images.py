"""Encoded images in predict requests (a detector's: {"b64": "<base64 PNG or JPEG>"}, TF
Serving's convention for binary values): decoded upright (EXIF orientation applied), in the
model's colour mode, letterboxed to its input like ingest did (edgepipe.contracts.letterbox);
the letterbox is kept so the answer can put the boxes back into the original image's pixels.
The size is read from the header first: a picture of more than MAX_PIXELS is refused unread.
"""

from __future__ import annotations

import base64
import binascii
import io

import numpy as np

from edgepipe.contracts import letterbox

MAX_PIXELS = 40_000_000
MODES = {1: "L", 3: "RGB", 4: "RGBA"}


class ImageError(ValueError):
    """The value is not a usable image; the message says why (the request's 400)."""


def decode(text: str, shape: tuple[int, int, int]) -> tuple[np.ndarray, letterbox.Transform]:
    """(uint8 [H, W, C] letterboxed pixels, the letterbox) of a base64-encoded image."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as error:
        raise ImageError(f"\"b64\" is not valid base64 ({error})") from None
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.width * image.height > MAX_PIXELS:
                raise ImageError(f"the image is {image.width}x{image.height}; at most "
                                 f"{MAX_PIXELS:,} pixels are decoded")
            image.load()
            upright = ImageOps.exif_transpose(image)
            if upright.mode not in ("L", "RGB", "RGBA"):
                upright = upright.convert("RGBA" if "A" in upright.mode else "RGB")
            if upright.mode == "RGBA" and shape[2] != 4:  # transparent pixels over white
                background = Image.new("RGB", upright.size, (255, 255, 255))
                background.paste(upright, mask=upright.getchannel("A"))
                upright = background
            return letterbox.apply(upright.convert(MODES[shape[2]]), shape[0], shape[1])
    except Image.DecompressionBombError as error:
        raise ImageError(f"the image is too large to decode ({error})") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise ImageError(f"cannot decode the image as PNG or JPEG ({error})") from None
