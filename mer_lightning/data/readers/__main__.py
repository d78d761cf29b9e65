"""`python -m mer_lightning.data.readers`: the table of registered datasets, as the docs show it."""

from mer_lightning.data.readers import markdown_table

print(markdown_table())
