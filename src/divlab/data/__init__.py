"""Data: generate and load data sets (GINC), tokenizers, ground truth."""
