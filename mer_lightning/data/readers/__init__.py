"""One reader per dataset: the dataset's own folder layout + annotation file -> SampleTable.

Every quirk of the real files is handled in the reader of its dataset and nowhere else.
`READERS` maps the dataset name to the reading function, each followed by `check_sample_ids`
(names that are not valid UTF-8 are skipped, two samples with one id are an error).
"""

import functools

from mer_lightning.data.readers.casme2 import read_casme2
from mer_lightning.data.readers.common import check_sample_ids
from mer_lightning.data.readers.composite import read_composite
from mer_lightning.data.readers.fer2013 import read_fer2013
from mer_lightning.data.readers.samm import read_samm
from mer_lightning.data.readers.smic import read_smic


def checked(reader):
    """`reader` followed by `check_sample_ids`, the checks every dataset's table must pass."""

    @functools.wraps(reader)
    def read(root, **options):
        return check_sample_ids(reader(root, **options))

    return read


READERS = {name: checked(reader) for name, reader in {
    "casme2": read_casme2,
    "samm": read_samm,
    "smic": read_smic,
    "fer2013": read_fer2013,
    "composite": read_composite,
}.items()}

__all__ = ["READERS", "read_casme2", "read_composite", "read_fer2013", "read_samm", "read_smic"]
