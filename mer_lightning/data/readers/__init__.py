"""One reader per dataset: the dataset's own folder layout + annotation file -> SampleTable.

Every quirk of the real files is handled in the reader of its dataset and nowhere else. A data
config picks its reader (`reader: {_target_: ..., _partial_: true}`); the DataModule runs
`common.check_sample_ids` on every table a reader returns (names that are not valid UTF-8 are
skipped, two samples with one id are an error).
"""

from mer_lightning.data.readers.casme2 import read_casme2
from mer_lightning.data.readers.composite import read_composite
from mer_lightning.data.readers.dfme import read_dfme
from mer_lightning.data.readers.fer2013 import read_fer2013
from mer_lightning.data.readers.fourdme import read_4dme
from mer_lightning.data.readers.samm import read_samm
from mer_lightning.data.readers.smic import read_smic

__all__ = ["read_4dme", "read_casme2", "read_composite", "read_dfme", "read_fer2013", "read_samm", "read_smic"]
