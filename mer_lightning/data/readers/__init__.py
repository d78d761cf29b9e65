"""One reader per dataset: the dataset's own folder layout + annotation file -> SampleTable.

Every quirk of the real files is handled in the reader of its dataset and nowhere else (shared
mechanics in `_sheet`, `_folders` and `_rows`). Each module here is imported with this package and
registers its dataset (`@register_dataset`, `mer_lightning.data.registry`), so adding a dataset is
a reader module plus its `conf/data/<name>.yaml`. A data config picks its reader
(`reader: {_target_: ..., _partial_: true}`); the DataModule runs `samples.check_sample_ids` on every
table a reader returns (names that are not valid UTF-8 are skipped, two samples with one id are an
error).

Exported: each registered reader (`read_casme2`, ...), `read_composite`, and the registry's queries
(`dataset`, `datasets`, `dataset_names`, `markdown_table`), complete once this package is imported.
"""

import importlib
import pkgutil

from mer_lightning.data.readers.composite import read_composite
from mer_lightning.data.registry import Dataset, dataset, dataset_names, datasets, markdown_table

for _module in sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")):
    importlib.import_module(f"{__name__}.{_module}")

globals().update({d.reader.__name__: d.reader for d in datasets()})

__all__ = ["Dataset", "dataset", "dataset_names", "datasets", "markdown_table", "read_composite",
           *sorted(d.reader.__name__ for d in datasets())]
