"""A QR code as a small inline SVG (one stroked path of horizontal runs), drawn on the server.

qrcode's own SVG writer draws one square per module (over 100 kB for a receipt); runs keep it
to a few kB. No style attributes, so the page's Content-Security-Policy needs no exception.
"""

from __future__ import annotations

import qrcode
import qrcode.constants
from markupsafe import Markup, escape


def qr_svg(data: str, *, title: str, border: int = 4, element_id: str = "qr-title") -> Markup:
    """An SVG image of ``data`` (error correction L: receipts are long), scaled by CSS."""
    code = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_L, border=border)
    code.add_data(data)
    code.make(fit=True)
    matrix = code.get_matrix()  # includes the border
    size = len(matrix)
    path = []
    for y, row in enumerate(matrix):
        x = 0
        while x < size:
            if row[x]:
                start = x
                while x < size and row[x]:
                    x += 1
                path.append(f"M{start} {y}.5h{x - start}")
            else:
                x += 1
    runs = "".join(path)
    return Markup(
        f'<svg class="qr" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {size} {size}" role="img" '
        f'aria-labelledby="{element_id}" shape-rendering="crispEdges">'
        f'<title id="{element_id}">{escape(title)}</title><rect width="{size}" height="{size}" fill="#fff"/>'
        f'<path stroke="#000" stroke-width="1" fill="none" d="{runs}"/></svg>'
    )
