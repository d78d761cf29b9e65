"""One reader per dataset: the dataset's own folder layout + annotation file -> SampleTable.

Every quirk of the real files is handled in the reader of its dataset and nowhere else.
`READERS` maps the `data.dataset` name to the reading function.
"""

from mer_lightning.data.readers.casme2 import read_casme2

READERS = {
    "casme2": read_casme2,
}

__all__ = ["READERS", "read_casme2"]
