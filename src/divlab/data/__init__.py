"""Data: generate and load data sets (GINC, text corpora), tokenizers, ground truth."""

# Importing the GINC package registers GincDataset with divlab.data.store.open_dataset.
from divlab.data import ginc  # noqa: F401
