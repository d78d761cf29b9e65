"""One writer per synthetic layout, mirroring the readers: `writers/<dataset>.py` writes files shaped
like that dataset's (`docs/formats/`), quirks included, and registers its layout (`layouts.py`).
Every module here is imported with this package, so adding a layout is one writer module.

Exported: each layout's writer (`write_casme2_like`, ...).
"""

import importlib
import pkgutil

from mer_lightning.data.synthetic.layouts import layout, layout_names

for _module in sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")):
    importlib.import_module(f"{__name__}.{_module}")

globals().update({layout(name).write.__name__: layout(name).write for name in layout_names()})

__all__ = sorted(layout(name).write.__name__ for name in layout_names())
